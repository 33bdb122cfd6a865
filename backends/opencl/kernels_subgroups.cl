// Kernel variant for devices with subgroups (cl_khr_subgroups or cl_intel_subgroups;
// kernel_variants.cpp picks it): the decode mat-vec (one token) for F16, Q8_0 and Q4_0 weights
// in f32 arithmetic (half read with vload_half, core in 1.2), the row's partial sums reduced
// with sub_group_reduce_add, then one float per subgroup through local memory, in place of
// the portable kernels' local-memory trees. One work-group per weight row. Not bit-identical
// with the CPU (kernels.cl is the reference): within the MatMul bound, nMSE 5e-4.
#if defined(cl_khr_subgroups)
#pragma OPENCL EXTENSION cl_khr_subgroups : enable
#elif !defined(cl_intel_subgroups)
#error "this variant needs cl_khr_subgroups or cl_intel_subgroups"
#endif

inline void finish_row(float v, local float* red, int r, global uchar* ybuf, ulong y_off, global const float* bias,
                       int has_bias, int accumulate) {
    const float s = sub_group_reduce_add(v);
    if (get_sub_group_local_id() == 0) red[get_sub_group_id()] = s;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (get_local_id(0) == 0) {
        float out = 0.0f;
        for (uint i = 0; i < get_num_sub_groups(); ++i) out += red[i];
        if (has_bias) out += bias[r];
        global float* y = (global float*)(ybuf + y_off) + r;
        *y = accumulate ? *y + out : out;
    }
}

// The activation row: x_off, or for the output head (sel_off >= 0) row step.logit_row of
// the rows that start at x_off (the index is read from the pool on the device).
inline global const float* act_row(global const uchar* xbuf, ulong x_off, ulong x_stride, long sel_off) {
    const ulong row = sel_off < 0 ? 0 : (ulong)((global const int*)(xbuf + sel_off))[0];
    return (global const float*)(xbuf + x_off + row * x_stride);
}

#define MAT_VEC_ARGS                                                                                     \
    global const uchar *W, ulong w_row_bytes, int K, int N, global const uchar *xbuf, ulong x_off,       \
        ulong x_stride, long sel_off, global uchar *ybuf, ulong y_off, global const float *bias, int has_bias, int accumulate, local float *red

kernel void mat_vec_f16(MAT_VEC_ARGS) {
    const int r = get_group_id(0), lid = get_local_id(0), ls = get_local_size(0);
    if (r >= N) return;
    global const half* w = (global const half*)(W + (ulong)r * w_row_bytes);
    global const float* x = act_row(xbuf, x_off, x_stride, sel_off);
    float acc = 0.0f;
    const int K4 = K / 4;
    for (int i = lid; i < K4; i += ls) acc += dot(vload_half4(i, w), vload4(i, x));
    for (int i = K4 * 4 + lid; i < K; i += ls) acc += vload_half(i, w) * x[i];  // a row that ends off 4
    finish_row(acc, red, r, ybuf, y_off, bias, has_bias, accumulate);
}

kernel void mat_vec_q8_0(MAT_VEC_ARGS) {
    const int r = get_group_id(0), lid = get_local_id(0), ls = get_local_size(0);
    if (r >= N) return;
    global const uchar* w = W + (ulong)r * w_row_bytes;
    global const float* x = act_row(xbuf, x_off, x_stride, sel_off);
    float acc = 0.0f;
    for (int b = lid; b < K / 32; b += ls) {
        global const uchar* blk = w + b * 34;
        const float d = vload_half(0, (global const half*)blk);
        global const char* q = (global const char*)(blk + 2);
        float s = 0.0f;
        for (int j = 0; j < 32; j += 4) s += dot(convert_float4(vload4(0, q + j)), vload4(0, x + b * 32 + j));
        acc += d * s;
    }
    finish_row(acc, red, r, ybuf, y_off, bias, has_bias, accumulate);
}

kernel void mat_vec_q4_0(MAT_VEC_ARGS) {
    const int r = get_group_id(0), lid = get_local_id(0), ls = get_local_size(0);
    if (r >= N) return;
    global const uchar* w = W + (ulong)r * w_row_bytes;
    global const float* x = act_row(xbuf, x_off, x_stride, sel_off);
    float acc = 0.0f;
    for (int b = lid; b < K / 32; b += ls) {
        global const uchar* blk = w + b * 18;
        const float d = vload_half(0, (global const half*)blk);
        global const float* xb = x + b * 32;
        float s = 0.0f;
        for (int j = 0; j < 16; j += 4) {
            const uchar4 q = vload4(0, blk + 2 + j);
            s += dot(convert_float4(q & (uchar4)15) - 8.0f, vload4(0, xb + j)) +
                 dot(convert_float4(q >> (uchar4)4) - 8.0f, vload4(0, xb + 16 + j));
        }
        acc += d * s;
    }
    finish_row(acc, red, r, ybuf, y_off, bias, has_bias, accumulate);
}
