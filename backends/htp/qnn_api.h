// The project's own declarations of the subset of Qualcomm's QNN C API that the adapter
// (qnn_adapter.h) calls, written from QNN's public documentation (the "QNN API" reference of
// Qualcomm AI Engine Direct: QnnInterface, QnnBackend, QnnDevice, QnnContext, QnnGraph,
// QnnTensor, QnnLog and the types they share). The SDK's own headers are proprietary and are
// not part of this repository; nothing here is taken from them.
//
// Only what the adapter uses is declared, with the SDK's sizes, member order and enum values,
// because these structs cross into libQnnHtp.so by pointer. Where the SDK has a union with
// members the adapter never touches, a byte array stands for them so the union keeps the
// SDK's size. When QNN_SDK_ROOT is given at configure time, qnn_api_sdk_check.cc compiles
// against the real headers and static_asserts every size, offset and enum value below.
//
// Conventions of the API (from its documentation): every call returns a 64-bit error handle
// whose low 16 bits are the error code (0 is success); handles are opaque pointers; strings
// and arrays passed in are only borrowed for the duration of the call unless said otherwise.
#pragma once
#include <cstdarg>
#include <cstdint>

namespace ei::qnn {

// ---- Common --------------------------------------------------------------------------------

using ErrorHandle = uint64_t;                 // Qnn_ErrorHandle_t
constexpr uint32_t error_code(ErrorHandle e) { return static_cast<uint32_t>(e & 0xFFFFu); }
constexpr ErrorHandle kSuccess = 0;           // QNN_SUCCESS

using Handle = void*;                         // Qnn_Handle_t, the base of all handle types
using LogHandle = Handle;                     // Qnn_LogHandle_t
using BackendHandle = Handle;                 // Qnn_BackendHandle_t
using DeviceHandle = Handle;                  // Qnn_DeviceHandle_t
using ContextHandle = Handle;                 // Qnn_ContextHandle_t
using GraphHandle = Handle;                   // Qnn_GraphHandle_t
using ProfileHandle = Handle;                 // Qnn_ProfileHandle_t (always null here)
using SignalHandle = Handle;                  // Qnn_SignalHandle_t (always null here)
using MemHandle = Handle;                     // Qnn_MemHandle_t (registered shared memory; unused)
using ContextBinarySize = uint64_t;           // Qnn_ContextBinarySize_t (64-bit since API 2.x minors
                                              // the adapter accepts; older ones had 32 bits)

// Qnn_Version_t: semantic version of an API.
struct Version {
    uint32_t major;
    uint32_t minor;
    uint32_t patch;
};

// Qnn_ApiVersion_t: the core API (common to all backends) and the backend-specific API.
struct ApiVersion {
    Version core;
    Version backend;
};

// The backend id of the Hexagon Tensor Processor backend (QNN_BACKEND_ID_HTP in the HTP
// backend's documentation); the provider of libQnnHtp.so reports it.
constexpr uint32_t kBackendIdHtp = 6;

// The op package of QNN's built-in operations.
constexpr const char* kOpPackage = "qti.aisw";

// QnnLog_Level_t: severity of a log message, and the most verbose level a logger accepts.
enum LogLevel : uint32_t {
    kLogError = 1,
    kLogWarn = 2,
    kLogInfo = 3,
    kLogVerbose = 4,
    kLogDebug = 5,
};
// QnnLog_Callback_t: receives each message as a printf format and its arguments.
using LogCallback = void (*)(const char* fmt, LogLevel level, uint64_t timestamp, va_list args);

// ---- Tensors -------------------------------------------------------------------------------

// Qnn_DataType_t: the high byte says the family (0 signed int, 1 unsigned int, 2 float,
// 3 signed fixed point, 4 unsigned fixed point, 5 bool), the low byte the bit width.
enum DataType : uint32_t {
    kInt8 = 0x0008,
    kInt16 = 0x0016,
    kInt32 = 0x0032,
    kInt64 = 0x0064,
    kUInt8 = 0x0108,
    kUInt16 = 0x0116,
    kUInt32 = 0x0132,
    kUInt64 = 0x0164,
    kFloat16 = 0x0216,
    kFloat32 = 0x0232,
    kSFixed4 = 0x0304,
    kSFixed8 = 0x0308,
    kSFixed16 = 0x0316,
    kSFixed32 = 0x0332,
    kUFixed4 = 0x0404,
    kUFixed8 = 0x0408,
    kUFixed16 = 0x0416,
    kUFixed32 = 0x0432,
    kBool8 = 0x0508,
    kDataTypeUndefined = 0x7FFFFFFF,
};

// Qnn_TensorType_t: who reads and writes a tensor.
enum TensorType : uint32_t {
    kTensorAppWrite = 0,   // a graph input the application writes
    kTensorAppRead = 1,    // a graph output the application reads
    kTensorAppReadWrite = 2,
    kTensorNative = 3,     // internal to the graph
    kTensorStatic = 4,     // constant data given at creation (weights, param tensors)
    kTensorNull = 5,       // an absent optional input
    kTensorTypeUndefined = 0x7FFFFFFF,
};

// Qnn_TensorDataFormat_t: the memory layout; 0 is a dense (flat) buffer, the only one used.
using TensorDataFormat = uint32_t;
constexpr TensorDataFormat kDataFormatFlatBuffer = 0;

// Qnn_Definition_t: whether the application defined a field or leaves it to the backend.
enum Definition : uint32_t {
    kDefinitionImplGenerated = 0,
    kDefinitionDefined = 1,
    kDefinitionUndefined = 0x7FFFFFFF,
};

// Qnn_QuantizationEncoding_t: which member of QuantizeParams' union is meaningful.
enum QuantizationEncoding : uint32_t {
    kEncodingScaleOffset = 0,          // one scale and offset for the whole tensor
    kEncodingAxisScaleOffset = 1,      // one per index of an axis (per channel)
    kEncodingBwScaleOffset = 2,        // (not used here)
    kEncodingBwAxisScaleOffset = 3,    // (not used here)
    kEncodingBlock = 4,                // (not used here)
    kEncodingBlockwiseExpansion = 5,   // per channel float scales times per block integer scales
    kEncodingVector = 6,               // (not used here)
    kEncodingUndefined = 0x7FFFFFFF,
};

// Qnn_ScaleOffset_t: real = scale * (quantized + offset).
struct ScaleOffset {
    float scale;
    int32_t offset;
};

// Qnn_AxisScaleOffset_t: one ScaleOffset per index of `axis`.
struct AxisScaleOffset {
    int32_t axis;
    uint32_t num_scale_offsets;
    ScaleOffset* scale_offset;
};

// Qnn_BlockwiseExpansionBlockScaleStorageType_t: the element type of the block scale array.
enum BlockScaleStorage : uint32_t {
    kBlockScaleStorage8 = 0,    // uint8_t per block scale
    kBlockScaleStorage16 = 1,   // uint16_t per block scale
    kBlockScaleStorageUndefined = 0x7FFFFFFF,
};

// Qnn_BlockwiseExpansion_t: each index c of `axis` has a float scale (scale_offsets[c]) and
// each of its num_blocks_per_axis blocks along the other dimension an unsigned integer
// multiplier of block_scale_bitwidth bits, block_scales8[c * num_blocks_per_axis + b].
struct BlockwiseExpansion {
    int32_t axis;
    ScaleOffset* scale_offsets;
    uint32_t num_blocks_per_axis;
    uint32_t block_scale_bitwidth;
    BlockScaleStorage block_scale_storage;
    union {
        uint8_t* block_scales8;
        uint16_t* block_scales16;
    };
};

// Qnn_QuantizeParams_t. `reserved` stands for the union members the adapter does not use
// (bit-width, block and vector encodings), the largest of which is 32 bytes.
struct QuantizeParams {
    Definition encoding_definition;
    QuantizationEncoding quantization_encoding;
    union {
        ScaleOffset scale_offset;                  // kEncodingScaleOffset
        AxisScaleOffset axis_scale_offset;         // kEncodingAxisScaleOffset
        BlockwiseExpansion* blockwise_expansion;   // kEncodingBlockwiseExpansion
        uint8_t reserved[32];
    };
};

// Qnn_TensorMemType_t: how a tensor's data is given.
enum TensorMemType : uint32_t {
    kMemRaw = 0,        // a client pointer (ClientBuffer)
    kMemHandle = 1,     // a registered memory handle (not used here)
    kMemTypeUndefined = 0x7FFFFFFF,
};

// Qnn_ClientBuffer_t: application memory; QNN copies static data at tensor creation and
// reads/writes io buffers during execution.
struct ClientBuffer {
    void* data;
    uint32_t data_size;
};

// Qnn_TensorV1_t: the description of one tensor.
struct TensorV1 {
    uint32_t id;                  // assigned by QNN when a graph tensor is created
    const char* name;             // unique within the graph
    TensorType type;
    TensorDataFormat data_format;
    DataType data_type;
    QuantizeParams quantize_params;
    uint32_t rank;
    uint32_t* dimensions;         // rank entries
    TensorMemType mem_type;
    union {
        ClientBuffer client_buf;  // kMemRaw
        MemHandle mem_handle;     // kMemHandle
    };
};

// Qnn_TensorVersion_t.
enum TensorVersion : uint32_t {
    kTensorVersion1 = 1,
    kTensorVersion2 = 2,
    kTensorVersionUndefined = 0x7FFFFFFF,
};

// Qnn_Tensor_t: a versioned tensor. The adapter writes version 1 only; `v2_reserved` stands
// for the larger version-2 member so that arrays of Tensor have the SDK's stride.
struct Tensor {
    TensorVersion version;
    union {
        TensorV1 v1;
        uint8_t v2_reserved[136];
    };
};

// ---- Ops -----------------------------------------------------------------------------------

// Qnn_Scalar_t: a typed scalar value.
struct Scalar {
    DataType data_type;
    union {
        float f32;
        double f64;
        uint64_t u64;
        int64_t i64;
        uint32_t u32;
        int32_t i32;
        uint16_t u16;
        int16_t i16;
        uint8_t u8;
        int8_t i8;
        uint8_t bool8;
        const char* str;
    };
};

// Qnn_ParamType_t.
enum ParamType : uint32_t {
    kParamScalar = 0,
    kParamTensor = 1,   // a static tensor created in the graph beforehand
    kParamTypeUndefined = 0x7FFFFFFF,
};

// Qnn_Param_t: a named op parameter.
struct Param {
    ParamType param_type;
    const char* name;
    union {
        Scalar scalar_param;
        Tensor tensor_param;
    };
};

// Qnn_OpConfigV1_t: one node: its name, package, op type, params and tensors.
struct OpConfigV1 {
    const char* name;
    const char* package_name;
    const char* type_name;
    uint32_t num_of_params;
    Param* params;
    uint32_t num_of_inputs;
    Tensor* input_tensors;
    uint32_t num_of_outputs;
    Tensor* output_tensors;
};

// Qnn_OpConfigVersion_t.
enum OpConfigVersion : uint32_t {
    kOpConfigVersion1 = 1,
    kOpConfigVersionUndefined = 0x7FFFFFFF,
};

// Qnn_OpConfig_t: a versioned op config, passed to graphAddNode by value.
struct OpConfig {
    OpConfigVersion version;
    union {
        OpConfigV1 v1;
    };
};

// ---- Context configs -----------------------------------------------------------------------

// QnnContext_ConfigOption_t: which member of ContextConfig's union is meaningful.
enum ContextConfigOption : uint32_t {
    kContextConfigCustom = 0,   // a backend-specific config (for HTP: HtpContextCustomConfig)
    kContextConfigUndefined = 0x7FFFFFFF,
};

// QnnContext_Config_t. `reserved` stands for the union members the adapter does not use.
struct ContextConfig {
    ContextConfigOption option;
    union {
        void* custom_config;    // kContextConfigCustom
        uint64_t reserved;
    };
};

// QnnHtpContext_ConfigOption_t (HTP backend API): the options of HtpContextCustomConfig.
enum HtpContextConfigOption : uint32_t {
    kHtpContextWeightSharing = 1,   // graphs of the context share their static weights
    kHtpContextConfigUnknown = 0x7FFFFFFF,
};

// QnnHtpContext_CustomConfig_t. `reserved` stands for the union members not used here (the
// largest is a context handle and a 64-bit size).
struct HtpContextCustomConfig {
    HtpContextConfigOption option;
    union {
        bool weight_sharing_enabled;   // kHtpContextWeightSharing
        uint64_t reserved[2];
    };
};

// ---- The interface -------------------------------------------------------------------------

// Config arrays (QnnBackend_Config_t, QnnContext_Config_t, ...) are null-terminated arrays of
// pointers; the adapter passes null (defaults) for all of them.
using ConfigList = const void**;

using BackendCreateFn = ErrorHandle (*)(LogHandle, ConfigList, BackendHandle*);
using BackendGetApiVersionFn = ErrorHandle (*)(ApiVersion*);
using BackendGetBuildIdFn = ErrorHandle (*)(const char** build_id);
using BackendFreeFn = ErrorHandle (*)(BackendHandle);
using ContextCreateFn = ErrorHandle (*)(BackendHandle, DeviceHandle, ConfigList, ContextHandle*);
using ContextGetBinarySizeFn = ErrorHandle (*)(ContextHandle, ContextBinarySize* size);
using ContextGetBinaryFn = ErrorHandle (*)(ContextHandle, void* buffer, ContextBinarySize size,
                                           ContextBinarySize* written);
using ContextCreateFromBinaryFn = ErrorHandle (*)(BackendHandle, DeviceHandle, ConfigList, const void* buffer,
                                                  ContextBinarySize size, ContextHandle*, ProfileHandle);
using ContextFreeFn = ErrorHandle (*)(ContextHandle, ProfileHandle);
using GraphCreateFn = ErrorHandle (*)(ContextHandle, const char* name, ConfigList, GraphHandle*);
using GraphAddNodeFn = ErrorHandle (*)(GraphHandle, OpConfig);
using GraphFinalizeFn = ErrorHandle (*)(GraphHandle, ProfileHandle, SignalHandle);
using GraphRetrieveFn = ErrorHandle (*)(ContextHandle, const char* name, GraphHandle*);
using GraphExecuteFn = ErrorHandle (*)(GraphHandle, const Tensor* inputs, uint32_t n_inputs, Tensor* outputs,
                                       uint32_t n_outputs, ProfileHandle, SignalHandle);
using TensorCreateGraphTensorFn = ErrorHandle (*)(GraphHandle, Tensor*);
using LogCreateFn = ErrorHandle (*)(LogCallback, LogLevel, LogHandle*);
using LogFreeFn = ErrorHandle (*)(LogHandle);
using DeviceCreateFn = ErrorHandle (*)(LogHandle, ConfigList, DeviceHandle*);
using DeviceFreeFn = ErrorHandle (*)(DeviceHandle);

// The leading part of the provider's function table (QNN_INTERFACE_VER_TYPE), in the SDK's
// order. Slots the adapter never calls are `void*`. The SDK's table continues past
// device_free (signals, error messages, newer additions); the adapter only ever reads this
// prefix through a pointer, so the shorter declaration is safe.
struct InterfaceTable {
    void* property_has_capability;
    BackendCreateFn backend_create;
    void* backend_set_config;
    BackendGetApiVersionFn backend_get_api_version;
    BackendGetBuildIdFn backend_get_build_id;
    void* backend_register_op_package;
    void* backend_get_supported_operations;
    void* backend_validate_op_config;
    BackendFreeFn backend_free;
    ContextCreateFn context_create;
    void* context_set_config;
    ContextGetBinarySizeFn context_get_binary_size;
    ContextGetBinaryFn context_get_binary;
    ContextCreateFromBinaryFn context_create_from_binary;
    ContextFreeFn context_free;
    GraphCreateFn graph_create;
    void* graph_create_subgraph;
    void* graph_set_config;
    GraphAddNodeFn graph_add_node;
    GraphFinalizeFn graph_finalize;
    GraphRetrieveFn graph_retrieve;
    GraphExecuteFn graph_execute;
    void* graph_execute_async;
    void* tensor_create_context_tensor;
    TensorCreateGraphTensorFn tensor_create_graph_tensor;
    LogCreateFn log_create;
    void* log_set_log_level;
    LogFreeFn log_free;
    void* profile_create;
    void* profile_set_config;
    void* profile_get_events;
    void* profile_get_sub_events;
    void* profile_get_event_data;
    void* profile_get_extended_event_data;
    void* profile_free;
    void* mem_register;
    void* mem_de_register;
    void* device_get_platform_info;
    void* device_free_platform_info;
    void* device_get_infrastructure;
    DeviceCreateFn device_create;
    void* device_set_config;
    void* device_get_info;
    DeviceFreeFn device_free;
};

// QnnInterface_t: one provider of a backend library: its backend id, name, the API versions
// it implements, and its function table.
struct Interface {
    uint32_t backend_id;
    const char* provider_name;
    ApiVersion api_version;
    union {
        InterfaceTable table;
    };
};

// QnnInterface_getProviders, the one symbol the adapter looks up in the backend library: sets
// *providers to an array of *n_providers provider pointers owned by the library.
using GetProvidersFn = ErrorHandle (*)(const Interface*** providers, uint32_t* n_providers);
constexpr const char* kGetProvidersSymbol = "QnnInterface_getProviders";

// The core API versions whose layouts these declarations follow: the major must be equal
// (QNN keeps the interface table and structs of a major backwards compatible, appending
// only) and the minor at least this one. Checked by qnn_api_sdk_check.cc against the SDK it
// is built with; see the README's NPU section for what has been verified on real hardware.
constexpr uint32_t kCoreApiMajor = 2;
constexpr uint32_t kCoreApiMinMinor = 14;

}  // namespace ei::qnn
