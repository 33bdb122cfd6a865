// Kernel variant for devices with cl_khr_fp16 (kernel_variants.cpp picks it): the decode
// mat-vec (one token) for F16, Q8_0 and Q4_0 weights with half loads and half dequantization
// (scale x quant in half, exact for Q4_0/Q8_0 quants times a half scale up to its rounding),
// products summed in float against the f32 activation. One work-group per weight row; the
// items stride over the row, then a local-memory tree sums their partials. Not bit-identical
// with the CPU (the portable kernels.cl is the reference): within the MatMul bound, nMSE 5e-4.
#pragma OPENCL EXTENSION cl_khr_fp16 : enable

// Sums v over the work-group into red[0] (LS a power of two) and writes the output.
inline void finish_row(float v, local float* red, int r, global uchar* ybuf, ulong y_off, global const float* bias,
                       int has_bias, int accumulate) {
    const int lid = get_local_id(0), ls = get_local_size(0);
    red[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = ls / 2; s > 0; s /= 2) {
        if (lid < s) red[lid] += red[lid + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0) {
        float out = red[0] + (has_bias ? bias[r] : 0.0f);
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

// F16 weights: eight halves a load.
kernel void mat_vec_f16(MAT_VEC_ARGS) {
    const int r = get_group_id(0), lid = get_local_id(0), ls = get_local_size(0);
    if (r >= N) return;
    global const half* w = (global const half*)(W + (ulong)r * w_row_bytes);
    global const float* x = act_row(xbuf, x_off, x_stride, sel_off);
    float acc = 0.0f;
    const int K8 = K / 8;
    for (int i = lid; i < K8; i += ls) {
        const float8 wv = convert_float8(vload8(i, w));
        const float8 xv = vload8(i, x);
        acc += dot(wv.lo, xv.lo) + dot(wv.hi, xv.hi);
    }
    for (int i = K8 * 8 + lid; i < K; i += ls) acc += (float)w[i] * x[i];  // a row that ends off 8
    finish_row(acc, red, r, ybuf, y_off, bias, has_bias, accumulate);
}

// Q8_0 blocks (half scale, 32 int8): dequantized in half, 8 at a time.
kernel void mat_vec_q8_0(MAT_VEC_ARGS) {
    const int r = get_group_id(0), lid = get_local_id(0), ls = get_local_size(0);
    if (r >= N) return;
    global const uchar* w = W + (ulong)r * w_row_bytes;
    global const float* x = act_row(xbuf, x_off, x_stride, sel_off);
    float acc = 0.0f;
    for (int b = lid; b < K / 32; b += ls) {
        global const uchar* blk = w + b * 34;
        const half d = *(global const half*)blk;  // blocks start at even offsets
        global const char* q = (global const char*)(blk + 2);
        for (int j = 0; j < 32; j += 8) {
            const half8 wv = convert_half8(vload8(0, q + j)) * d;
            const float8 f = convert_float8(wv), xv = vload8(0, x + b * 32 + j);
            acc += dot(f.lo, xv.lo) + dot(f.hi, xv.hi);
        }
    }
    finish_row(acc, red, r, ybuf, y_off, bias, has_bias, accumulate);
}

// Q4_0 blocks (half scale, 16 bytes: element j in the low nibble of byte j, j + 16 in its high).
kernel void mat_vec_q4_0(MAT_VEC_ARGS) {
    const int r = get_group_id(0), lid = get_local_id(0), ls = get_local_size(0);
    if (r >= N) return;
    global const uchar* w = W + (ulong)r * w_row_bytes;
    global const float* x = act_row(xbuf, x_off, x_stride, sel_off);
    float acc = 0.0f;
    for (int b = lid; b < K / 32; b += ls) {
        global const uchar* blk = w + b * 18;
        const half d = *(global const half*)blk;
        global const float* xb = x + b * 32;
        for (int j = 0; j < 16; j += 8) {
            const uchar8 q = vload8(0, blk + 2 + j);
            const half8 lo = (convert_half8(q & (uchar8)15) - (half8)8) * d;
            const half8 hi = (convert_half8(q >> (uchar8)4) - (half8)8) * d;
            const float8 flo = convert_float8(lo), fhi = convert_float8(hi);
            const float8 xlo = vload8(0, xb + j), xhi = vload8(0, xb + 16 + j);
            acc += dot(flo.lo, xlo.lo) + dot(flo.hi, xlo.hi) + dot(fhi.lo, xhi.lo) + dot(fhi.hi, xhi.hi);
        }
    }
    finish_row(acc, red, r, ybuf, y_off, bias, has_bias, accumulate);
}
