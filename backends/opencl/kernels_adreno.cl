// Kernel variant for Qualcomm Adreno (cl_qcom_* extensions; kernel_variants.cpp picks it): the
// decode mat-vec (one token) for Q4_0 weights split at upload into two arrays, the layout
// Adreno's texture path reads fastest: the quants, 16 bytes a block, read through an
// image1d_buffer_t of RGBA uint32 texels (one texel per block), and the half scales as a plain
// array. cl_qcom_reqd_sub_group_size asks for Adreno's "half" subgroup (64 items, one
// work-group per row); the reduction is sub_group_reduce_add where the device has subgroups,
// else a local-memory tree (so the kernel also runs on drivers without them). f32 arithmetic;
// not bit-identical with the CPU (kernels.cl is the reference): within nMSE 5e-4.
#if defined(cl_khr_subgroups)
#pragma OPENCL EXTENSION cl_khr_subgroups : enable
#define EI_SUBGROUPS 1
#elif defined(cl_intel_subgroups)
#define EI_SUBGROUPS 1
#endif

#if defined(cl_qcom_reqd_sub_group_size)
#pragma OPENCL EXTENSION cl_qcom_reqd_sub_group_size : enable
#define EI_REQD_SUBGROUP __attribute__((qcom_reqd_sub_group_size("half")))
#else
#define EI_REQD_SUBGROUP
#endif

inline float row_sum(float v, local float* red) {
    const int lid = get_local_id(0);
#if defined(EI_SUBGROUPS)
    const float s = sub_group_reduce_add(v);
    if (get_sub_group_local_id() == 0) red[get_sub_group_id()] = s;
    barrier(CLK_LOCAL_MEM_FENCE);
    float out = 0.0f;
    if (lid == 0) {
        for (uint i = 0; i < get_num_sub_groups(); ++i) out += red[i];
    }
    return out;
#else
    red[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = get_local_size(0) / 2; s > 0; s /= 2) {
        if (lid < s) red[lid] += red[lid + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    return red[0];
#endif
}

// Byte j of a block's 16 quant bytes, from its texel (x holds bytes 0-3, little-endian).
inline float4 nibbles_lo(uint u) {
    return (float4)((float)(u & 15u), (float)((u >> 8) & 15u), (float)((u >> 16) & 15u), (float)((u >> 24) & 15u)) - 8.0f;
}
inline float4 nibbles_hi(uint u) {
    return (float4)((float)((u >> 4) & 15u), (float)((u >> 12) & 15u), (float)((u >> 20) & 15u), (float)(u >> 28)) - 8.0f;
}

// The activation row: x_off, or for the output head (sel_off >= 0) row step.logit_row of
// the rows that start at x_off (the index is read from the pool on the device).
inline global const float* act_row(global const uchar* xbuf, ulong x_off, ulong x_stride, long sel_off) {
    const ulong row = sel_off < 0 ? 0 : (ulong)((global const int*)(xbuf + sel_off))[0];
    return (global const float*)(xbuf + x_off + row * x_stride);
}

// Row r's blocks are texels r * (K / 32) ...; element j of a block is the low nibble of byte
// j, element j + 16 the high nibble.
kernel EI_REQD_SUBGROUP void mat_vec_q4_0_split(read_only image1d_buffer_t quants, global const half* scales, int K,
                                                int N, global const uchar* xbuf, ulong x_off, ulong x_stride,
                                                long sel_off, global uchar* ybuf,
                                                ulong y_off, global const float* bias, int has_bias, int accumulate,
                                                local float* red) {
    const int r = get_group_id(0), lid = get_local_id(0), ls = get_local_size(0);
    if (r >= N) return;
    global const float* x = act_row(xbuf, x_off, x_stride, sel_off);
    const int nb = K / 32;
    float acc = 0.0f;
    for (int b = lid; b < nb; b += ls) {
        const int blk = r * nb + b;
        const uint4 q = read_imageui(quants, blk);
        const float d = vload_half(blk, scales);
        global const float* xb = x + b * 32;
        const float s = dot(nibbles_lo(q.x), vload4(0, xb)) + dot(nibbles_lo(q.y), vload4(1, xb)) +
                        dot(nibbles_lo(q.z), vload4(2, xb)) + dot(nibbles_lo(q.w), vload4(3, xb)) +
                        dot(nibbles_hi(q.x), vload4(4, xb)) + dot(nibbles_hi(q.y), vload4(5, xb)) +
                        dot(nibbles_hi(q.z), vload4(6, xb)) + dot(nibbles_hi(q.w), vload4(7, xb));
        acc += d * s;
    }
    const float out = row_sum(acc, red);
    if (lid == 0) {
        const float v = out + (has_bias ? bias[r] : 0.0f);
        global float* y = (global float*)(ybuf + y_off) + r;
        *y = accumulate ? *y + v : v;
    }
}
