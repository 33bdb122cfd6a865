// Built only where QNN_SDK_ROOT is given at configure time (backends/htp/CMakeLists.txt):
// includes the QNN SDK's own headers beside the project's declarations (qnn_api.h) and
// fails the build unless every size, alignment, member offset and enum value the adapter
// relies on is the SDK's. The file name does not end in .cpp so the runtime's source glob
// never picks it up; nothing else depends on it.
#include <cstddef>
#include <cstdint>

#include "HTP/QnnHtpCommon.h"
#include "HTP/QnnHtpContext.h"
#include "QnnInterface.h"
#include "htp/qnn_api.h"

namespace q = ei::qnn;

#define EI_SAME_LAYOUT(ours, sdk)                                                            \
    static_assert(sizeof(ours) == sizeof(sdk), "size of " #ours " differs from " #sdk);      \
    static_assert(alignof(ours) == alignof(sdk), "alignment of " #ours " differs from " #sdk)
#define EI_SAME_OFFSET(ours, our_member, sdk, sdk_member)                                    \
    static_assert(offsetof(ours, our_member) == offsetof(sdk, sdk_member),                   \
                  "offset of " #ours "::" #our_member " differs from " #sdk "::" #sdk_member)
#define EI_SAME_VALUE(ours, sdk) \
    static_assert(static_cast<uint64_t>(ours) == static_cast<uint64_t>(sdk), #ours " differs from " #sdk)

// Versions: the declarations follow this SDK's major, and its minor is one they accept.
static_assert(QNN_API_VERSION_MAJOR == q::kCoreApiMajor, "the SDK's core API major is not the declarations'");
static_assert(QNN_API_VERSION_MINOR >= q::kCoreApiMinMinor, "the SDK is older than the declarations' minimum");
EI_SAME_VALUE(q::kBackendIdHtp, QNN_BACKEND_ID_HTP);

// Common.
EI_SAME_LAYOUT(q::ErrorHandle, Qnn_ErrorHandle_t);
EI_SAME_LAYOUT(q::ContextBinarySize, Qnn_ContextBinarySize_t);
EI_SAME_VALUE(q::kSuccess, QNN_SUCCESS);
EI_SAME_LAYOUT(q::Version, Qnn_Version_t);
EI_SAME_OFFSET(q::Version, minor, Qnn_Version_t, minor);
EI_SAME_OFFSET(q::Version, patch, Qnn_Version_t, patch);
EI_SAME_LAYOUT(q::ApiVersion, Qnn_ApiVersion_t);
EI_SAME_OFFSET(q::ApiVersion, backend, Qnn_ApiVersion_t, backendApiVersion);
EI_SAME_LAYOUT(q::LogLevel, QnnLog_Level_t);
EI_SAME_VALUE(q::kLogError, QNN_LOG_LEVEL_ERROR);
EI_SAME_VALUE(q::kLogWarn, QNN_LOG_LEVEL_WARN);
EI_SAME_VALUE(q::kLogInfo, QNN_LOG_LEVEL_INFO);
EI_SAME_VALUE(q::kLogVerbose, QNN_LOG_LEVEL_VERBOSE);
EI_SAME_VALUE(q::kLogDebug, QNN_LOG_LEVEL_DEBUG);

// Data types.
EI_SAME_LAYOUT(q::DataType, Qnn_DataType_t);
EI_SAME_VALUE(q::kInt8, QNN_DATATYPE_INT_8);
EI_SAME_VALUE(q::kInt16, QNN_DATATYPE_INT_16);
EI_SAME_VALUE(q::kInt32, QNN_DATATYPE_INT_32);
EI_SAME_VALUE(q::kInt64, QNN_DATATYPE_INT_64);
EI_SAME_VALUE(q::kUInt8, QNN_DATATYPE_UINT_8);
EI_SAME_VALUE(q::kUInt16, QNN_DATATYPE_UINT_16);
EI_SAME_VALUE(q::kUInt32, QNN_DATATYPE_UINT_32);
EI_SAME_VALUE(q::kUInt64, QNN_DATATYPE_UINT_64);
EI_SAME_VALUE(q::kFloat16, QNN_DATATYPE_FLOAT_16);
EI_SAME_VALUE(q::kFloat32, QNN_DATATYPE_FLOAT_32);
EI_SAME_VALUE(q::kSFixed4, QNN_DATATYPE_SFIXED_POINT_4);
EI_SAME_VALUE(q::kSFixed8, QNN_DATATYPE_SFIXED_POINT_8);
EI_SAME_VALUE(q::kSFixed16, QNN_DATATYPE_SFIXED_POINT_16);
EI_SAME_VALUE(q::kSFixed32, QNN_DATATYPE_SFIXED_POINT_32);
EI_SAME_VALUE(q::kUFixed4, QNN_DATATYPE_UFIXED_POINT_4);
EI_SAME_VALUE(q::kUFixed8, QNN_DATATYPE_UFIXED_POINT_8);
EI_SAME_VALUE(q::kUFixed16, QNN_DATATYPE_UFIXED_POINT_16);
EI_SAME_VALUE(q::kUFixed32, QNN_DATATYPE_UFIXED_POINT_32);
EI_SAME_VALUE(q::kBool8, QNN_DATATYPE_BOOL_8);
EI_SAME_VALUE(q::kDataTypeUndefined, QNN_DATATYPE_UNDEFINED);

// Tensor enums.
EI_SAME_LAYOUT(q::TensorType, Qnn_TensorType_t);
EI_SAME_VALUE(q::kTensorAppWrite, QNN_TENSOR_TYPE_APP_WRITE);
EI_SAME_VALUE(q::kTensorAppRead, QNN_TENSOR_TYPE_APP_READ);
EI_SAME_VALUE(q::kTensorAppReadWrite, QNN_TENSOR_TYPE_APP_READWRITE);
EI_SAME_VALUE(q::kTensorNative, QNN_TENSOR_TYPE_NATIVE);
EI_SAME_VALUE(q::kTensorStatic, QNN_TENSOR_TYPE_STATIC);
EI_SAME_VALUE(q::kTensorNull, QNN_TENSOR_TYPE_NULL);
EI_SAME_LAYOUT(q::TensorDataFormat, Qnn_TensorDataFormat_t);
EI_SAME_VALUE(q::kDataFormatFlatBuffer, QNN_TENSOR_DATA_FORMAT_FLAT_BUFFER);
EI_SAME_LAYOUT(q::Definition, Qnn_Definition_t);
EI_SAME_VALUE(q::kDefinitionImplGenerated, QNN_DEFINITION_IMPL_GENERATED);
EI_SAME_VALUE(q::kDefinitionDefined, QNN_DEFINITION_DEFINED);
EI_SAME_VALUE(q::kDefinitionUndefined, QNN_DEFINITION_UNDEFINED);
EI_SAME_LAYOUT(q::QuantizationEncoding, Qnn_QuantizationEncoding_t);
EI_SAME_VALUE(q::kEncodingScaleOffset, QNN_QUANTIZATION_ENCODING_SCALE_OFFSET);
EI_SAME_VALUE(q::kEncodingAxisScaleOffset, QNN_QUANTIZATION_ENCODING_AXIS_SCALE_OFFSET);
EI_SAME_VALUE(q::kEncodingBwScaleOffset, QNN_QUANTIZATION_ENCODING_BW_SCALE_OFFSET);
EI_SAME_VALUE(q::kEncodingBwAxisScaleOffset, QNN_QUANTIZATION_ENCODING_BW_AXIS_SCALE_OFFSET);
EI_SAME_VALUE(q::kEncodingBlock, QNN_QUANTIZATION_ENCODING_BLOCK);
EI_SAME_VALUE(q::kEncodingBlockwiseExpansion, QNN_QUANTIZATION_ENCODING_BLOCKWISE_EXPANSION);
EI_SAME_VALUE(q::kEncodingVector, QNN_QUANTIZATION_ENCODING_VECTOR);
EI_SAME_VALUE(q::kEncodingUndefined, QNN_QUANTIZATION_ENCODING_UNDEFINED);
EI_SAME_LAYOUT(q::BlockScaleStorage, Qnn_BlockwiseExpansionBlockScaleStorageType_t);
EI_SAME_VALUE(q::kBlockScaleStorage8, QNN_BLOCKWISE_EXPANSION_BITWIDTH_SCALE_STORAGE_8);
EI_SAME_VALUE(q::kBlockScaleStorage16, QNN_BLOCKWISE_EXPANSION_BITWIDTH_SCALE_STORAGE_16);
EI_SAME_LAYOUT(q::TensorMemType, Qnn_TensorMemType_t);
EI_SAME_VALUE(q::kMemRaw, QNN_TENSORMEMTYPE_RAW);
EI_SAME_VALUE(q::kMemHandle, QNN_TENSORMEMTYPE_MEMHANDLE);
EI_SAME_LAYOUT(q::TensorVersion, Qnn_TensorVersion_t);
EI_SAME_VALUE(q::kTensorVersion1, QNN_TENSOR_VERSION_1);
EI_SAME_VALUE(q::kTensorVersion2, QNN_TENSOR_VERSION_2);

// Encodings.
EI_SAME_LAYOUT(q::ScaleOffset, Qnn_ScaleOffset_t);
EI_SAME_OFFSET(q::ScaleOffset, offset, Qnn_ScaleOffset_t, offset);
EI_SAME_LAYOUT(q::AxisScaleOffset, Qnn_AxisScaleOffset_t);
EI_SAME_OFFSET(q::AxisScaleOffset, num_scale_offsets, Qnn_AxisScaleOffset_t, numScaleOffsets);
EI_SAME_OFFSET(q::AxisScaleOffset, scale_offset, Qnn_AxisScaleOffset_t, scaleOffset);
EI_SAME_LAYOUT(q::BlockwiseExpansion, Qnn_BlockwiseExpansion_t);
EI_SAME_OFFSET(q::BlockwiseExpansion, scale_offsets, Qnn_BlockwiseExpansion_t, scaleOffsets);
EI_SAME_OFFSET(q::BlockwiseExpansion, num_blocks_per_axis, Qnn_BlockwiseExpansion_t, numBlocksPerAxis);
EI_SAME_OFFSET(q::BlockwiseExpansion, block_scale_bitwidth, Qnn_BlockwiseExpansion_t, blockScaleBitwidth);
EI_SAME_OFFSET(q::BlockwiseExpansion, block_scale_storage, Qnn_BlockwiseExpansion_t, blockScaleStorageType);
EI_SAME_OFFSET(q::BlockwiseExpansion, block_scales8, Qnn_BlockwiseExpansion_t, blocksScale8);
EI_SAME_LAYOUT(q::QuantizeParams, Qnn_QuantizeParams_t);
EI_SAME_OFFSET(q::QuantizeParams, quantization_encoding, Qnn_QuantizeParams_t, quantizationEncoding);
EI_SAME_OFFSET(q::QuantizeParams, scale_offset, Qnn_QuantizeParams_t, scaleOffsetEncoding);
EI_SAME_OFFSET(q::QuantizeParams, axis_scale_offset, Qnn_QuantizeParams_t, axisScaleOffsetEncoding);
EI_SAME_OFFSET(q::QuantizeParams, blockwise_expansion, Qnn_QuantizeParams_t, blockwiseExpansion);

// Tensors.
EI_SAME_LAYOUT(q::ClientBuffer, Qnn_ClientBuffer_t);
EI_SAME_OFFSET(q::ClientBuffer, data_size, Qnn_ClientBuffer_t, dataSize);
EI_SAME_LAYOUT(q::TensorV1, Qnn_TensorV1_t);
EI_SAME_OFFSET(q::TensorV1, name, Qnn_TensorV1_t, name);
EI_SAME_OFFSET(q::TensorV1, type, Qnn_TensorV1_t, type);
EI_SAME_OFFSET(q::TensorV1, data_format, Qnn_TensorV1_t, dataFormat);
EI_SAME_OFFSET(q::TensorV1, data_type, Qnn_TensorV1_t, dataType);
EI_SAME_OFFSET(q::TensorV1, quantize_params, Qnn_TensorV1_t, quantizeParams);
EI_SAME_OFFSET(q::TensorV1, rank, Qnn_TensorV1_t, rank);
EI_SAME_OFFSET(q::TensorV1, dimensions, Qnn_TensorV1_t, dimensions);
EI_SAME_OFFSET(q::TensorV1, mem_type, Qnn_TensorV1_t, memType);
EI_SAME_OFFSET(q::TensorV1, client_buf, Qnn_TensorV1_t, clientBuf);
EI_SAME_LAYOUT(q::Tensor, Qnn_Tensor_t);
EI_SAME_OFFSET(q::Tensor, v1, Qnn_Tensor_t, v1);

// Ops.
EI_SAME_LAYOUT(q::Scalar, Qnn_Scalar_t);
EI_SAME_OFFSET(q::Scalar, f32, Qnn_Scalar_t, floatValue);
EI_SAME_OFFSET(q::Scalar, u32, Qnn_Scalar_t, uint32Value);
EI_SAME_OFFSET(q::Scalar, i32, Qnn_Scalar_t, int32Value);
EI_SAME_OFFSET(q::Scalar, bool8, Qnn_Scalar_t, bool8Value);
EI_SAME_LAYOUT(q::ParamType, Qnn_ParamType_t);
EI_SAME_VALUE(q::kParamScalar, QNN_PARAMTYPE_SCALAR);
EI_SAME_VALUE(q::kParamTensor, QNN_PARAMTYPE_TENSOR);
EI_SAME_LAYOUT(q::Param, Qnn_Param_t);
EI_SAME_OFFSET(q::Param, name, Qnn_Param_t, name);
EI_SAME_OFFSET(q::Param, scalar_param, Qnn_Param_t, scalarParam);
EI_SAME_OFFSET(q::Param, tensor_param, Qnn_Param_t, tensorParam);
EI_SAME_LAYOUT(q::OpConfigV1, Qnn_OpConfigV1_t);
EI_SAME_OFFSET(q::OpConfigV1, package_name, Qnn_OpConfigV1_t, packageName);
EI_SAME_OFFSET(q::OpConfigV1, type_name, Qnn_OpConfigV1_t, typeName);
EI_SAME_OFFSET(q::OpConfigV1, num_of_params, Qnn_OpConfigV1_t, numOfParams);
EI_SAME_OFFSET(q::OpConfigV1, params, Qnn_OpConfigV1_t, params);
EI_SAME_OFFSET(q::OpConfigV1, num_of_inputs, Qnn_OpConfigV1_t, numOfInputs);
EI_SAME_OFFSET(q::OpConfigV1, input_tensors, Qnn_OpConfigV1_t, inputTensors);
EI_SAME_OFFSET(q::OpConfigV1, num_of_outputs, Qnn_OpConfigV1_t, numOfOutputs);
EI_SAME_OFFSET(q::OpConfigV1, output_tensors, Qnn_OpConfigV1_t, outputTensors);
EI_SAME_LAYOUT(q::OpConfig, Qnn_OpConfig_t);
EI_SAME_OFFSET(q::OpConfig, v1, Qnn_OpConfig_t, v1);
EI_SAME_VALUE(q::kOpConfigVersion1, QNN_OPCONFIG_VERSION_1);

// Context configs (the HTP weight-sharing option).
EI_SAME_LAYOUT(q::ContextConfigOption, QnnContext_ConfigOption_t);
EI_SAME_VALUE(q::kContextConfigCustom, QNN_CONTEXT_CONFIG_OPTION_CUSTOM);
EI_SAME_LAYOUT(q::ContextConfig, QnnContext_Config_t);
EI_SAME_OFFSET(q::ContextConfig, custom_config, QnnContext_Config_t, customConfig);
EI_SAME_LAYOUT(q::HtpContextConfigOption, QnnHtpContext_ConfigOption_t);
EI_SAME_VALUE(q::kHtpContextWeightSharing, QNN_HTP_CONTEXT_CONFIG_OPTION_WEIGHT_SHARING_ENABLED);
EI_SAME_LAYOUT(q::HtpContextCustomConfig, QnnHtpContext_CustomConfig_t);
EI_SAME_OFFSET(q::HtpContextCustomConfig, weight_sharing_enabled, QnnHtpContext_CustomConfig_t, weightSharingEnabled);

// The provider and the prefix of its function table the adapter reads.
EI_SAME_OFFSET(q::Interface, provider_name, QnnInterface_t, providerName);
EI_SAME_OFFSET(q::Interface, api_version, QnnInterface_t, apiVersion);
EI_SAME_OFFSET(q::Interface, table, QnnInterface_t, QNN_INTERFACE_VER_NAME);
using SdkTable = QNN_INTERFACE_VER_TYPE;
static_assert(sizeof(q::InterfaceTable) <= sizeof(SdkTable), "the declared table is longer than the SDK's");
EI_SAME_OFFSET(q::InterfaceTable, backend_create, SdkTable, backendCreate);
EI_SAME_OFFSET(q::InterfaceTable, backend_get_api_version, SdkTable, backendGetApiVersion);
EI_SAME_OFFSET(q::InterfaceTable, backend_get_build_id, SdkTable, backendGetBuildId);
EI_SAME_OFFSET(q::InterfaceTable, backend_free, SdkTable, backendFree);
EI_SAME_OFFSET(q::InterfaceTable, context_create, SdkTable, contextCreate);
EI_SAME_OFFSET(q::InterfaceTable, context_get_binary_size, SdkTable, contextGetBinarySize);
EI_SAME_OFFSET(q::InterfaceTable, context_get_binary, SdkTable, contextGetBinary);
EI_SAME_OFFSET(q::InterfaceTable, context_create_from_binary, SdkTable, contextCreateFromBinary);
EI_SAME_OFFSET(q::InterfaceTable, context_free, SdkTable, contextFree);
EI_SAME_OFFSET(q::InterfaceTable, graph_create, SdkTable, graphCreate);
EI_SAME_OFFSET(q::InterfaceTable, graph_add_node, SdkTable, graphAddNode);
EI_SAME_OFFSET(q::InterfaceTable, graph_finalize, SdkTable, graphFinalize);
EI_SAME_OFFSET(q::InterfaceTable, graph_retrieve, SdkTable, graphRetrieve);
EI_SAME_OFFSET(q::InterfaceTable, graph_execute, SdkTable, graphExecute);
EI_SAME_OFFSET(q::InterfaceTable, tensor_create_graph_tensor, SdkTable, tensorCreateGraphTensor);
EI_SAME_OFFSET(q::InterfaceTable, log_create, SdkTable, logCreate);
EI_SAME_OFFSET(q::InterfaceTable, log_free, SdkTable, logFree);
EI_SAME_OFFSET(q::InterfaceTable, device_create, SdkTable, deviceCreate);
EI_SAME_OFFSET(q::InterfaceTable, device_free, SdkTable, deviceFree);

// The signatures of the functions the adapter calls: each SDK function, called with the
// SDK's own argument types that have the declared layouts, must accept the same arguments
// positions as ours (checked by arity and by the layout of each parameter type above);
// here, that the SDK's entry point has the declared shape.
static_assert(sizeof(&QnnInterface_getProviders) == sizeof(q::GetProvidersFn), "QnnInterface_getProviders");
