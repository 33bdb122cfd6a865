// EdgeInfinite OpenCL kernels: portable OpenCL C 1.2, no cl_khr_fp16, no subgroups. Half
// values are only stored and loaded (vload_half / vstore_half_rte, core in 1.2) or handled
// as bits; all arithmetic is f32. Pool tensors are addressed as (pool, byte offset), the way
// the graph names them; weights are one buffer per tensor in their GGUF block layout.
//
// Work-group sizes: every kernel that reduces uses its local size LS (a power of two, set
// by the host) and a local scratch of LS floats per reduced value.

// Arithmetic contract: the CPU backend's (backends/cpu/float_math.h), so that models with f32
// weights give its bits, hence llama.cpp's: no contraction of a*b+c (every fma is written out),
// dots in the 16-lane order, fast_exp for softmax and SiLU, RoPE angles from the host (cos/sin
// tables computed there exactly as the CPU does), and the two sums the CPU keeps in double
// (RmsNorm's, softmax's) in double where the device has cl_khr_fp64; elsewhere they are f32
// sums and the results agree within the per-op tolerances instead of to the bit.
#pragma OPENCL FP_CONTRACT OFF
#if defined(cl_khr_fp64)
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
typedef double acc_t;
#else
typedef float acc_t;
#endif

// ---- numbers ---------------------------------------------------------------------------

// IEEE half bits -> float, exact for every value (as the CPU backend's fp16_to_fp32).
inline float h2f(uint h) {
    uint sign = (h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) return as_float(sign | as_uint((float)m * 5.9604644775390625e-8f));
    if (e == 31) return as_float(sign | 0x7f800000u | (m << 13) | (m ? 0x400000u : 0u));
    return as_float(sign | ((e + 112u) << 23) | (m << 13));
}

// float -> half bits, round to nearest even (as the CPU backend's fp32_to_fp16).
inline uint f2h(float f) {
    uint u = as_uint(f), sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00u | ((a >> 13) & 0x3ffu);
    if (a >= 0x477ff000u) return sign | 0x7c00u;
    if (a < 0x38800000u) return sign | (as_uint(as_float(a) + 0.5f) - 0x3f000000u);
    return sign | ((a - 0x38000000u + 0xfffu + ((a >> 13) & 1u)) >> 13);
}

// x rounded to the nearest half, as f32: what an f16 KV cache makes the CPU round to.
inline float round_h(float x) { return h2f(f2h(x)); }

inline uint rd16(global const uchar* p) { return (uint)p[0] | ((uint)p[1] << 8); }

inline float sigma(float x) { return x > 0.0f ? x + 1.0f : exp(x); }

// ARM optimized-routines' exp (as the CPU's fast_exp): polynomial, then an exact scaling by 2^n.
inline float fast_exp(float x) {
    const float shift = 0x1.8p23f;
    const float z = fma(x, 0x1.715476p+0f, shift);
    const float n = z - shift;
    const float b = fma(-n, 0x1.7f7d1cp-20f, fma(-n, 0x1.62e4p-1f, x));
    const float u = b * b;
    const float j = fma(fma(fma(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, fma(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)), u,
                        fma(0x1.ffffecp-1f, b, 1.0f));
    if (isnan(n)) return NAN;
    if (fabs(n) > 192.0f) return n > 0.0f ? INFINITY : 0.0f;
    return ldexp(j, (int)n);  // correctly rounded: the CPU's exact product rounded once
}

// The 16-lane tree sum (float_math.h lane16_reduce).
inline float lane16_reduce(const float* l) {
    float t8[8], t4[4];
    for (int i = 0; i < 8; ++i) t8[i] = l[i] + l[i + 8];
    for (int i = 0; i < 4; ++i) t4[i] = t8[i] + t8[i + 4];
    return (t4[0] + t4[2]) + (t4[1] + t4[3]);
}

// Work-group reductions over LS items (all items call; red holds LS floats).
inline float wg_sum(local float* red, float v) {
    const int lid = get_local_id(0), ls = get_local_size(0);
    barrier(CLK_LOCAL_MEM_FENCE);
    red[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = ls / 2; s > 0; s >>= 1) {
        if (lid < s) red[lid] += red[lid + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    return red[0];
}

inline float wg_max(local float* red, float v) {
    const int lid = get_local_id(0), ls = get_local_size(0);
    barrier(CLK_LOCAL_MEM_FENCE);
    red[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = ls / 2; s > 0; s >>= 1) {
        if (lid < s) red[lid] = fmax(red[lid], red[lid + s]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    return red[0];
}

// ---- weight rows: 32 elements at a time ------------------------------------------------
// chunk_T(row, c, K, w): elements [32c, 32c + 32) of a row of K elements, dequantized as the
// CPU backend's to_float does (float types: past K reads as 0).

inline void chunk_f32(global const uchar* row, int c, int K, float* w) {
    global const float* x = (global const float*)row;
    for (int j = 0; j < 32; ++j) w[j] = 32 * c + j < K ? x[32 * c + j] : 0.0f;
}

inline void chunk_f16(global const uchar* row, int c, int K, float* w) {
    global const half* x = (global const half*)row;
    for (int j = 0; j < 32; ++j) w[j] = 32 * c + j < K ? vload_half(32 * c + j, x) : 0.0f;
}

inline void chunk_bf16(global const uchar* row, int c, int K, float* w) {
    global const ushort* x = (global const ushort*)row;
    for (int j = 0; j < 32; ++j) w[j] = 32 * c + j < K ? as_float((uint)x[32 * c + j] << 16) : 0.0f;
}

inline void chunk_q8_0(global const uchar* row, int c, int K, float* w) {
    global const uchar* b = row + 34 * c;
    const float d = h2f(rd16(b));
    for (int j = 0; j < 32; ++j) w[j] = (float)((char)b[2 + j]) * d;
}

inline void chunk_q4_0(global const uchar* row, int c, int K, float* w) {
    global const uchar* b = row + 18 * c;
    const float d = h2f(rd16(b));
    for (int j = 0; j < 16; ++j) {
        w[j] = (float)((int)(b[2 + j] & 15) - 8) * d;
        w[j + 16] = (float)((int)(b[2 + j] >> 4) - 8) * d;
    }
}

inline void chunk_q5_0(global const uchar* row, int c, int K, float* w) {
    global const uchar* b = row + 22 * c;
    const float d = h2f(rd16(b));
    const uint qh = (uint)b[2] | ((uint)b[3] << 8) | ((uint)b[4] << 16) | ((uint)b[5] << 24);
    for (int j = 0; j < 32; ++j) {
        const int lo = j < 16 ? (b[6 + j] & 15) : (b[6 + j - 16] >> 4);
        w[j] = (float)((lo | (int)(((qh >> j) & 1u) << 4)) - 16) * d;
    }
}

// Q4_K: 256-element super-blocks of 144 bytes (d, dmin, 12 bytes of 6-bit scales and mins,
// 128 bytes of nibbles); 32-element sub-block s uses nibble (s & 1) of bytes 32*(s/2)...
inline void chunk_q4_k(global const uchar* row, int c, int K, float* w) {
    global const uchar* b = row + 144 * (c / 8);
    const int s = c % 8;
    global const uchar* sc = b + 4;
    uint scale, mn;
    if (s < 4) {
        scale = sc[s] & 63;
        mn = sc[s + 4] & 63;
    } else {
        scale = (sc[s + 4] & 15) | ((sc[s - 4] >> 6) << 4);
        mn = (sc[s + 4] >> 4) | ((sc[s] >> 6) << 4);
    }
    const float d = h2f(rd16(b)) * (float)scale, m = h2f(rd16(b + 2)) * (float)mn;
    global const uchar* q = b + 16 + 32 * (s / 2);
    const int shift = 4 * (s & 1);
    for (int l = 0; l < 32; ++l) w[l] = d * (float)((q[l] >> shift) & 15) - m;
}

// Q6_K: super-blocks of 210 bytes (128 ql, 64 qh, 16 int8 scales, d); sub-block s lies in
// half s/4, quarter s%4, as the CPU backend's q6k_decode lays it out.
inline void chunk_q6_k(global const uchar* row, int c, int K, float* w) {
    global const uchar* b = row + 210 * (c / 8);
    const int s = c % 8, h = s / 4, k = s % 4;
    global const uchar* ql = b + 64 * h + 32 * (k & 1);
    global const uchar* qh = b + 128 + 32 * h;
    const float d = h2f(rd16(b + 208));
    for (int l = 0; l < 32; ++l) {
        const int lo = k < 2 ? (ql[l] & 15) : (ql[l] >> 4);
        const int q = (lo | (((qh[l] >> (2 * k)) & 3) << 4)) - 32;
        const float dsc = d * (float)((char)b[192 + 2 * s + (l >= 16)]);
        w[l] = dsc * (float)q;
    }
}

// ---- GetRows and MatMul, one pair per weight type --------------------------------------

#define TOKEN_TILE 8

// dst[t] = dequant(W[ids[t]]): one item per (32-element chunk, token).
#define GET_ROWS(T)                                                                                      \
    kernel void get_rows_##T(global const uchar* W, ulong w_row_bytes, int K, int n_rows,                \
                             global uchar* pool, ulong ids_off, ulong dst_off, ulong dst_stride) {       \
        const int c = get_global_id(0), t = get_global_id(1);                                           \
        if (32 * c >= K) return;                                                                         \
        int id = ((global const int*)(pool + ids_off))[t];                                               \
        id = clamp(id, 0, n_rows - 1); /* the session checks ids; a device never reads past W */        \
        float w[32];                                                                                     \
        chunk_##T(W + (ulong)id * w_row_bytes, c, K, w);                                                 \
        global float* y = (global float*)(pool + dst_off + (ulong)t * dst_stride) + 32 * c;              \
        for (int j = 0; j < 32 && 32 * c + j < K; ++j) y[j] = w[j];                                      \
    }

// Where a matmul's activation rows start: x_off, or for the output head (sel_off >= 0) the
// row the step's step.logit_row input names.
inline ulong first_row(global const uchar* xbuf, ulong x_off, ulong x_stride, long sel_off) {
    return sel_off < 0 ? x_off : x_off + (ulong)((global const int*)(xbuf + sel_off))[0] * x_stride;
}

// F32 and F16 weights in the CPU's 16-lane order, so f32 and f16 models reproduce its bits:
// 16 items per work-group, item l accumulates lane l (elements l, l + 16, ...) with fmas in
// index order, then the lanes are summed as lane16_reduce does. F16 rounds the activations
// to half first, as the CPU converts them for its f16 dot. Launched with a local size of 16.
#define MAT_MUL_LANE16(T, LOAD_W, LOAD_X)                                                                \
    kernel void mat_mul_##T##_lane16(global const uchar* W, ulong w_row_bytes, int K, int N, int rows_per_group, \
                                     global const uchar* xbuf, ulong x_off, ulong x_stride, long sel_off, \
                                     int n_tok, global uchar* ybuf, ulong y_off, ulong y_stride,        \
                                     global const float* bias, int has_bias, int accumulate,             \
                                     local float* red) {                                                 \
        const int lid = get_local_id(0);                                                                 \
        x_off = first_row(xbuf, x_off, x_stride, sel_off);                                               \
        const int t0 = get_group_id(1) * TOKEN_TILE, nt = min(TOKEN_TILE, n_tok - t0);                  \
        const int r_end = min(N, (int)(get_group_id(0) + 1) * rows_per_group);                          \
        for (int r = get_group_id(0) * rows_per_group; r < r_end; ++r) {                                 \
            float acc[TOKEN_TILE];                                                                       \
            for (int t = 0; t < TOKEN_TILE; ++t) acc[t] = 0.0f;                                          \
            global const uchar* w = W + (ulong)r * w_row_bytes;                                          \
            for (int i = lid; i < K; i += 16) {                                                          \
                const float wi = LOAD_W;                                                                 \
                for (int t = 0; t < nt; ++t) {                                                           \
                    const float xi = ((global const float*)(xbuf + x_off + (ulong)(t0 + t) * x_stride))[i]; \
                    acc[t] = fma(wi, LOAD_X, acc[t]);                                                    \
                }                                                                                        \
            }                                                                                            \
            barrier(CLK_LOCAL_MEM_FENCE);                                                                \
            for (int t = 0; t < nt; ++t) red[t * 16 + lid] = acc[t];                                     \
            barrier(CLK_LOCAL_MEM_FENCE);                                                                \
            if (lid < nt) {                                                                              \
                float l[16];                                                                             \
                for (int i = 0; i < 16; ++i) l[i] = red[lid * 16 + i];                                   \
                float v = lane16_reduce(l);                                                              \
                if (has_bias) v += bias[r];                                                              \
                global float* y = (global float*)(ybuf + y_off + (ulong)(t0 + lid) * y_stride) + r;      \
                *y = accumulate ? *y + v : v;                                                            \
            }                                                                                            \
        }                                                                                                \
    }

MAT_MUL_LANE16(f32, ((global const float*)w)[i], xi)
MAT_MUL_LANE16(f16, vload_half(i, (global const half*)w), round_h(xi))

GET_ROWS(f32) GET_ROWS(f16) GET_ROWS(bf16) GET_ROWS(q8_0) GET_ROWS(q4_0) GET_ROWS(q5_0) GET_ROWS(q4_k)
GET_ROWS(q6_k)

// ---- quantized weights: the CPU's activation quantization and integer dots --------------
// As the CPU backend: activations are quantized per token to Q8_0 (for Q8_0, Q4_0, Q5_0
// weights) or Q8_K (for Q4_K, Q6_K), then each (weight row, token) dot sums integers per block
// and adds the scaled block sums in block order, one item per output, so the results are
// the CPU's bits. aq: int8 values, K per token; ad: each block's scale as a float (the Q8_0
// scale already rounded through half, as the CPU stores it); bs: Q8_K's sums of 16.

// One item per (32-element block, token): ggml's quantize_row_q8_0_ref.
kernel void quantize_q8_0(global const uchar* xbuf, ulong x_off, ulong x_stride, long sel_off, int K, global char* aq,
                          global float* ad) {
    const int b = get_global_id(0), t = get_global_id(1);
    x_off = first_row(xbuf, x_off, x_stride, sel_off);
    global const float* x = (global const float*)(xbuf + x_off + (ulong)t * x_stride) + 32 * b;
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = fmax(amax, fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    ad[(ulong)t * (K / 32) + b] = h2f(f2h(d));
    for (int j = 0; j < 32; ++j) {
        const float q = round(x[j] * id);  // halves away from zero, as roundf
        aq[(ulong)t * K + 32 * b + j] = q >= -128.0f && q <= 127.0f ? (char)(int)q : (char)-128;
    }
}

// One item per (256-element block, token): ggml's quantize_row_q8_K_ref.
kernel void quantize_q8_k(global const uchar* xbuf, ulong x_off, ulong x_stride, long sel_off, int K, global char* aq,
                          global float* ad, global short* bs) {
    const int b = get_global_id(0), t = get_global_id(1);
    x_off = first_row(xbuf, x_off, x_stride, sel_off);
    global const float* x = (global const float*)(xbuf + x_off + (ulong)t * x_stride) + 256 * b;
    global char* q = aq + (ulong)t * K + 256 * b;
    global short* sums = bs + (ulong)t * (K / 16) + 16 * b;
    float amax = 0.0f, mx = 0.0f;
    for (int j = 0; j < 256; ++j) {
        const float ax = fabs(x[j]);
        if (ax > amax) {
            amax = ax;
            mx = x[j];
        }
    }
    if (amax == 0.0f) {
        ad[(ulong)t * (K / 256) + b] = 0.0f;
        for (int j = 0; j < 256; ++j) q[j] = 0;
        for (int g = 0; g < 16; ++g) sums[g] = 0;
        return;
    }
    const float iscale = -127.0f / mx;
    for (int j = 0; j < 256; ++j) {
        const int v = (int)rint(iscale * x[j]);  // nearest, ties to even: ggml's nearest_int
        q[j] = (char)min(v, 127);
    }
    for (int g = 0; g < 16; ++g) {
        int sum = 0;
        for (int j = 0; j < 16; ++j) sum += q[16 * g + j];
        sums[g] = (short)sum;
    }
    ad[(ulong)t * (K / 256) + b] = 1.0f / iscale;
}

inline int q4_0_dot(global const uchar* x, global const char* y) {
    int sumi = 0;
    for (int j = 0; j < 16; ++j) {
        sumi += ((int)(x[2 + j] & 15) - 8) * y[j];
        sumi += ((int)(x[2 + j] >> 4) - 8) * y[j + 16];
    }
    return sumi;
}

// Block dots of one weight row with one quantized activation row, summed as the CPU does:
// Q8_0, Q4_0 and Q5_0 as its packed GEMM (acc = fma(isum, w_scale * a_scale, acc), its path
// on CPUs with AVX-512 VNNI; its row kernels add the product instead, a rounding apart),
// Q4_K and Q6_K as its row kernels.
inline float dot_q8_0(global const uchar* w, int K, global const char* q, global const float* d) {
    float s = 0.0f;
    for (int b = 0; b < K / 32; ++b) {
        global const uchar* x = w + 34 * b;
        int sumi = 0;
        for (int j = 0; j < 32; ++j) sumi += (int)((char)x[2 + j]) * q[32 * b + j];
        s = fma((float)sumi, h2f(rd16(x)) * d[b], s);
    }
    return s;
}

inline float dot_q4_0(global const uchar* w, int K, global const char* q, global const float* d) {
    float s = 0.0f;
    for (int b = 0; b < K / 32; ++b) {
        global const uchar* x = w + 18 * b;
        s = fma((float)q4_0_dot(x, q + 32 * b), h2f(rd16(x)) * d[b], s);
    }
    return s;
}

inline float dot_q5_0(global const uchar* w, int K, global const char* q, global const float* d) {
    float s = 0.0f;
    for (int b = 0; b < K / 32; ++b) {
        global const uchar* x = w + 22 * b;
        const uint qh = (uint)x[2] | ((uint)x[3] << 8) | ((uint)x[4] << 16) | ((uint)x[5] << 24);
        int sumi = 0;
        for (int j = 0; j < 32; ++j) {
            const int lo = j < 16 ? (x[6 + j] & 15) : (x[6 + j - 16] >> 4);
            sumi += ((lo | (int)(((qh >> j) & 1u) << 4)) - 16) * q[32 * b + j];
        }
        s = fma((float)sumi, h2f(rd16(x)) * d[b], s);
    }
    return s;
}

inline float dot_q4_k(global const uchar* w, int K, global const char* q, global const float* d,
                      global const short* bs) {
    float s = 0.0f;
    for (int b = 0; b < K / 256; ++b) {
        global const uchar* x = w + 144 * b;
        global const uchar* sc = x + 4;
        global const uchar* qs = x + 16;
        global const char* q8 = q + 256 * b;
        global const short* sums = bs + 16 * b;
        int isum = 0, msum = 0;
        for (int c = 0; c < 4; ++c, qs += 32, q8 += 64) {
            int scl[2], mn[2];
            for (int h = 0; h < 2; ++h) {
                const int j = 2 * c + h;
                if (j < 4) {
                    scl[h] = sc[j] & 63;
                    mn[h] = sc[j + 4] & 63;
                } else {
                    scl[h] = (sc[j + 4] & 15) | ((sc[j - 4] >> 6) << 4);
                    mn[h] = (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4);
                }
            }
            int s0 = 0, s1 = 0;
            for (int l = 0; l < 32; ++l) {
                s0 += (int)(qs[l] & 15) * q8[l];
                s1 += (int)(qs[l] >> 4) * q8[l + 32];
            }
            isum += scl[0] * s0 + scl[1] * s1;
            msum += mn[0] * (sums[4 * c] + sums[4 * c + 1]) + mn[1] * (sums[4 * c + 2] + sums[4 * c + 3]);
        }
        s += h2f(rd16(x)) * d[b] * (float)isum - h2f(rd16(x + 2)) * d[b] * (float)msum;
    }
    return s;
}

inline float dot_q6_k(global const uchar* w, int K, global const char* q, global const float* d) {
    float s = 0.0f;
    for (int b = 0; b < K / 256; ++b) {
        global const uchar* x = w + 210 * b;
        global const char* q8 = q + 256 * b;
        int isum = 0;
        for (int g = 0; g < 16; ++g) {
            // Group g = elements 16g..16g+15: sub-block s = g / 2 of half s / 4, quarter s % 4.
            const int sb = g / 2, h = sb / 4, k = sb % 4;
            global const uchar* ql = x + 64 * h + 32 * (k & 1);
            global const uchar* qh = x + 128 + 32 * h;
            int gs = 0;
            for (int e = 0; e < 16; ++e) {
                const int l = 16 * (g & 1) + e;
                const int lo = k < 2 ? (ql[l] & 15) : (ql[l] >> 4);
                gs += ((lo | (((qh[l] >> (2 * k)) & 3) << 4)) - 32) * q8[16 * g + e];
            }
            isum += (int)((char)x[192 + g]) * gs;
        }
        s += h2f(rd16(x + 208)) * d[b] * (float)isum;
    }
    return s;
}

// BF16 as the CPU: products rounded to float, summed in index order in double (where the
// device has it).
inline float dot_bf16(global const uchar* w, int K, global const float* x) {
    global const ushort* wb = (global const ushort*)w;
    acc_t s = 0;
    for (int i = 0; i < K; ++i) {
        // The activation rounded to bf16 as ggml does (nearest even, NaNs made quiet).
        const uint u = as_uint(x[i]);
        const uint h = (u & 0x7fffffffu) > 0x7f800000u ? (u >> 16) | 64u : (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
        const float a = as_float((uint)wb[i] << 16), c = as_float(h << 16);
        s += (acc_t)(a * c);
    }
    return (float)s;
}

// One item per (weight row, token) for the types above.
#define MAT_MUL_Q(T, DOT)                                                                                \
    kernel void mat_mul_##T(global const uchar* W, ulong w_row_bytes, int K, int N, global const char* aq, \
                            global const float* ad, global const short* bs, global const uchar* xbuf,   \
                            ulong x_off, ulong x_stride, long sel_off, global uchar* ybuf, ulong y_off,  \
                            ulong y_stride, global const float* bias, int has_bias, int accumulate) {     \
        const int r = get_global_id(0), t = get_global_id(1);                                            \
        x_off = first_row(xbuf, x_off, x_stride, sel_off);                                               \
        if (r >= N) return;                                                                              \
        global const uchar* w = W + (ulong)r * w_row_bytes;                                              \
        float v = DOT;                                                                                   \
        if (has_bias) v += bias[r];                                                                      \
        global float* y = (global float*)(ybuf + y_off + (ulong)t * y_stride) + r;                       \
        *y = accumulate ? *y + v : v;                                                                    \
    }

MAT_MUL_Q(q8_0, dot_q8_0(w, K, aq + (ulong)t * K, ad + (ulong)t * (K / 32)))
MAT_MUL_Q(q4_0, dot_q4_0(w, K, aq + (ulong)t * K, ad + (ulong)t * (K / 32)))
MAT_MUL_Q(q5_0, dot_q5_0(w, K, aq + (ulong)t * K, ad + (ulong)t * (K / 32)))
MAT_MUL_Q(q4_k, dot_q4_k(w, K, aq + (ulong)t * K, ad + (ulong)t * (K / 256), bs + (ulong)t * (K / 16)))
MAT_MUL_Q(q6_k, dot_q6_k(w, K, aq + (ulong)t * K, ad + (ulong)t * (K / 256)))
MAT_MUL_Q(bf16, dot_bf16(w, K, (global const float*)(xbuf + x_off + (ulong)t * x_stride)))

// ---- row-wise ops ----------------------------------------------------------------------

// y[t] = x[t] / rms(x[t]) * w: a work-group per token.
kernel void rms_norm(global uchar* pool, ulong x_off, ulong x_stride, ulong y_off, ulong y_stride, int n,
                     global const float* w, float eps, local float* red) {
    const int t = get_group_id(0), lid = get_local_id(0), ls = get_local_size(0);
    global const float* x = (global const float*)(pool + x_off + (ulong)t * x_stride);
    global float* y = (global float*)(pool + y_off + (ulong)t * y_stride);
    // The CPU's sum: float squares added in index order (in double where the device has it).
    if (lid == 0) {
        acc_t sum = 0;
        for (int i = 0; i < n; ++i) sum += (acc_t)(x[i] * x[i]);
        red[0] = (float)(sum / n);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    const float scale = 1.0f / sqrt(red[0] + eps);
    for (int i = lid; i < n; i += ls) y[i] = x[i] * scale * w[i];
}

// Rotates one head (x and y may alias) with the angles of one position: cs/sn hold
// cos/sin of theta_i = pos * base^(-2i/n_rot) for i < n_rot/2, computed on the host exactly as
// the CPU backend computes them. Dims past n_rot pass through.
inline void rope_head(global const float* x, global float* y, int head_dim, int n_rot, global const float* cs,
                      global const float* sn, int halves) {
    const int half_rot = n_rot / 2;
    if (x != y) {
        for (int i = n_rot; i < head_dim; ++i) y[i] = x[i];
    }
    for (int i = 0; i < half_rot; ++i) {
        const int a = halves ? i : 2 * i, b = halves ? i + half_rot : 2 * i + 1;
        const float x0 = x[a], x1 = x[b];
        y[a] = fma(x0, cs[i], -(x1 * sn[i]));
        y[b] = fma(x0, sn[i], x1 * cs[i]);
    }
}

// One item per (head, token); angles: row t of the step's step.rope input in the pool (cos
// then sin, half_rot each).
kernel void rope(global uchar* pool, ulong x_off, ulong x_stride, ulong y_off, ulong y_stride, int head_dim,
                 int n_rot, ulong angles_off, int halves) {
    const int h = get_global_id(0), t = get_global_id(1);
    global const float* x = (global const float*)(pool + x_off + (ulong)t * x_stride) + h * head_dim;
    global float* y = (global float*)(pool + y_off + (ulong)t * y_stride) + h * head_dim;
    global const float* cs = (global const float*)(pool + angles_off) + (ulong)t * n_rot;
    rope_head(x, y, head_dim, n_rot, cs, cs + n_rot / 2, halves);
}

// Writes the new K and V rows into their cache slots (the step's step.kv_slot input): one
// item per (element, token).
kernel void kv_store(global uchar* pool, ulong k_off, ulong v_off, ulong src_stride, ulong kc_off, ulong vc_off,
                     ulong cache_stride, int f16, ulong slots_off) {
    const int i = get_global_id(0), t = get_global_id(1);
    const long slot = ((global const int*)(pool + slots_off))[t];
    const float k = ((global const float*)(pool + k_off + (ulong)t * src_stride))[i];
    const float v = ((global const float*)(pool + v_off + (ulong)t * src_stride))[i];
    global uchar* kr = pool + kc_off + (ulong)slot * cache_stride;
    global uchar* vr = pool + vc_off + (ulong)slot * cache_stride;
    if (f16) {
        vstore_half_rte(k, i, (global half*)kr);
        vstore_half_rte(v, i, (global half*)vr);
    } else {
        ((global float*)kr)[i] = k;
        ((global float*)vr)[i] = v;
    }
}

// gate[t][i] = silu(gate[t][i]) * up[t][i]: one item per (element, token).
kernel void swiglu(global uchar* pool, ulong g_off, ulong g_stride, ulong u_off, ulong u_stride) {
    const int i = get_global_id(0), t = get_global_id(1);
    global float* g = (global float*)(pool + g_off + (ulong)t * g_stride);
    const float u = ((global const float*)(pool + u_off + (ulong)t * u_stride))[i];
    const float x = g[i];
    g[i] = x / (1.0f + fast_exp(0.0f - x)) * u;
}

// ---- segment attention -----------------------------------------------------------------

inline float cache_at(global const uchar* row, int f16, int c) {
    return f16 ? vload_half(c, (global const half*)row) : ((global const float*)row)[c];
}

// The cached rows a query sees, in position order, from the step's inputs (step_inputs.h):
// the older sink rows [0, vis[1]), the older ring rows in two spans of slots (vis[2] + i,
// i < vis[3]; vis[4] + i, i < vis[5]), then the step's own rows 0..t through their slots.
// List index j -> cache slot.
inline long list_slot(long j, global const int* vis, global const int* slots) {
    if (j < vis[1]) return j;
    j -= vis[1];
    if (j < vis[3]) return vis[2] + j;
    j -= vis[3];
    if (j < vis[5]) return vis[4] + j;
    return slots[j - vis[5]];
}

// out[t][h] = segment attention of query (t, h) (graph.h), in the CPU backend's order: a
// work-group per (head, token). scores: the group's own row of list_max floats. Memory
// retrieval and gate when use_memory. sink_angles (when sink_query): per token, the angles
// that rotate the pre-RoPE query for its position minus the folded tokens, for the sink keys.
kernel void segment_attention(global uchar* pool, ulong o_off, ulong o_stride, ulong q_off, ulong q_stride,
                              ulong qn_off, ulong qn_stride, ulong kc_off, ulong vc_off, ulong cache_stride, int f16,
                              int D, int H, int group, int n_sink, ulong pos_off, ulong vis_off, ulong slots_off, float scale,
                              global float* scores, int list_max, ulong m_off, ulong z_off, int gate,
                              global const float* gate_w, global const float* gate_b, int has_gate_b,
                              int memory_rope, ulong sink_angles_off, int n_rot,
                              int halves, local float* red, local float* lq, local float* lqs, local float* lo,
                              local float* lm) {
    const int h = get_group_id(0), t = get_group_id(1), lid = get_local_id(0), ls = get_local_size(0);
    const int hk = h / group;
    const long qp = ((global const long*)(pool + pos_off))[t];
    global const int* vis = (global const int*)(pool + vis_off);
    global const int* slots = (global const int*)(pool + slots_off);
    global const float* q = (global const float*)(pool + q_off + (ulong)t * q_stride) + h * D;
    global const float* qn = (global const float*)(pool + qn_off + (ulong)t * qn_stride) + h * D;
    global const uchar* kc = pool + kc_off + (ulong)hk * D * (f16 ? 2 : 4);
    global const uchar* vc = pool + vc_off + (ulong)hk * D * (f16 ? 2 : 4);
    const long sink_rows = min((long)n_sink, qp + 1);
    const long visible = (long)vis[1] + vis[3] + vis[5] + t + 1;
    const int sink_query = vis[7] && sink_rows > 0;  // step.visible: memory used, sink queries rotated
    const int use_memory = vis[6] && gate != 0;
    // With an f16 cache the CPU rounds q and the attention weights to f16 before their dots.
    for (int c = lid; c < D; c += ls) lq[c] = f16 ? round_h(q[c]) : q[c];
    if (sink_query && lid == 0) {
        global const float* cs = (global const float*)(pool + sink_angles_off) + (ulong)t * n_rot;
        for (int c = n_rot; c < D; ++c) lqs[c] = qn[c];
        for (int i = 0; i < n_rot / 2; ++i) {
            const int a = halves ? i : 2 * i, b = halves ? i + n_rot / 2 : 2 * i + 1;
            const float x0 = qn[a], x1 = qn[b];
            lqs[a] = fma(x0, cs[i], -(x1 * cs[n_rot / 2 + i]));
            lqs[b] = fma(x0, cs[n_rot / 2 + i], x1 * cs[i]);
        }
        if (f16) {
            for (int c = 0; c < D; ++c) lqs[c] = round_h(lqs[c]);
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    // Scores: each a 16-lane dot times the scale.
    global float* sc = scores + ((ulong)t * H + h) * list_max;
    float mx = -INFINITY;
    for (long j = lid; j < visible; j += ls) {
        global const uchar* kr = kc + (ulong)list_slot(j, vis, slots) * cache_stride;
        local const float* qq = sink_query && j < sink_rows ? lqs : lq;
        float l[16];
        for (int i = 0; i < 16; ++i) l[i] = 0.0f;
        for (int c = 0; c < D; ++c) l[c % 16] = fma(qq[c], cache_at(kr, f16, c), l[c % 16]);
        const float s = lane16_reduce(l) * scale;
        sc[j] = s;
        mx = fmax(mx, s);
    }
    mx = wg_max(red, mx);
    for (long j = lid; j < visible; j += ls) sc[j] = fast_exp(sc[j] - mx);
    barrier(CLK_GLOBAL_MEM_FENCE);
    // The CPU's sum: 16-element chunks summed as lane16_reduce, the chunks added in order
    // (in double where the device has it).
    if (lid == 0) {
        acc_t sum = 0;
        for (long j0 = 0; j0 < visible; j0 += 16) {
            float l[16];
            for (int i = 0; i < 16; ++i) l[i] = j0 + i < visible ? sc[j0 + i] : 0.0f;
            sum += (acc_t)lane16_reduce(l);
        }
        red[0] = (float)((acc_t)1 / sum);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    const float inv = red[0];
    for (long j = lid; j < visible; j += ls) {
        const float p = sc[j] * inv;
        sc[j] = f16 ? round_h(p) : p;
    }
    barrier(CLK_GLOBAL_MEM_FENCE);
    // Output: per dim, a 16-lane sum over the list index.
    for (int c = lid; c < D; c += ls) {
        float l[16];
        for (int i = 0; i < 16; ++i) l[i] = 0.0f;
        for (long j = 0; j < visible; ++j) {
            global const uchar* vr = vc + (ulong)list_slot(j, vis, slots) * cache_stride;
            l[j % 16] = fma(sc[j], cache_at(vr, f16, c), l[j % 16]);
        }
        lo[c] = lane16_reduce(l);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    if (use_memory) {
        // A_mem = sigma(q) M / (sigma(q) . z + eps), q pre-RoPE unless memory_rope.
        global const float* qm = memory_rope ? q : qn;
        global const float* M = (global const float*)(pool + m_off) + (ulong)hk * D * D;
        global const float* z = (global const float*)(pool + z_off) + (ulong)hk * D;
        for (int c = lid; c < D; c += ls) lqs[c] = sigma(qm[c]);  // lqs is free again
        barrier(CLK_LOCAL_MEM_FENCE);
        float den = 0.0f;
        for (int c = lid; c < D; c += ls) den = fma(lqs[c], z[c], den);
        den = wg_sum(red, den);
        const float inv_den = 1.0f / (den + 1e-6f);
        for (int c = lid; c < D; c += ls) {
            float m = 0.0f;
            for (int i = 0; i < D; ++i) m = fma(lqs[i], M[(ulong)i * D + c], m);
            lm[c] = m * inv_den;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        float g;
        const float b = has_gate_b ? gate_b[h] : 0.0f;
        if (gate == 1) {
            g = 1.0f / (1.0f + exp(-(gate_w[h] + b)));
        } else {
            global const float* w = gate_w + (ulong)h * 2 * D;
            float s = 0.0f;
            for (int c = lid; c < D; c += ls) s = fma(w[c], lm[c], fma(w[D + c], lo[c], s));
            s = wg_sum(red, s);
            g = 1.0f / (1.0f + exp(-(s + b)));
        }
        for (int c = lid; c < D; c += ls) lo[c] = g * lm[c] + (1.0f - g) * lo[c];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    global float* out = (global float*)(pool + o_off + (ulong)t * o_stride) + h * D;
    for (int c = lid; c < D; c += ls) out[c] = lo[c];
}

// ---- the memory fold -------------------------------------------------------------------
// Folds n = L cached tokens from fold_start of one layer into its memory, per KV head:
// linear M += sigma(K)^T V; delta M += sigma(K)^T (V - sigma(K) M / (sigma(K) z)); z += sum
// of sigma(K) rows. Three kernels in queue order: prepare (sigma(un-RoPE'd K) and V rows
// into scratch), delta (corrects V with the memory as it was), update.

// One item per (token, KV head): sk[hk][i] = sigma(K row, rotated back by -pos unless
// memory_rope), v[hk][i] = V row.
// The step inputs: slot i (step.fold_slot) holds the i-th folded token, and angles row i
// (step.fold_rope) rotates it back from its position.
kernel void fold_prepare(global uchar* pool, ulong kc_off, ulong vc_off, ulong cache_stride, int f16, int D,
                         ulong slots_off, int n, global float* sk, global float* v, int memory_rope, int n_rot,
                         ulong angles_off, int halves) {
    const int i = get_global_id(0), hk = get_global_id(1);
    const long slot = ((global const int*)(pool + slots_off))[i];
    global const float* angles = (global const float*)(pool + angles_off);
    global const uchar* kr = pool + kc_off + (ulong)slot * cache_stride + (ulong)hk * D * (f16 ? 2 : 4);
    global const uchar* vr = pool + vc_off + (ulong)slot * cache_stride + (ulong)hk * D * (f16 ? 2 : 4);
    global float* ko = sk + ((ulong)hk * n + i) * D;
    global float* vo = v + ((ulong)hk * n + i) * D;
    for (int c = 0; c < D; ++c) {
        ko[c] = cache_at(kr, f16, c);
        vo[c] = cache_at(vr, f16, c);
    }
    if (!memory_rope) rope_head(ko, ko, D, n_rot, angles + (ulong)i * n_rot, angles + (ulong)i * n_rot + n_rot / 2, halves);
    for (int c = 0; c < D; ++c) ko[c] = sigma(ko[c]);
}

// Delta rule, one item per (column c, token i, KV head): v[i][c] -= (sk_i M)[c] / (sk_i . z),
// skipped where the memory retrieves nothing (sk_i . z <= 0, e.g. empty).
kernel void fold_delta(global uchar* pool, ulong m_off, ulong z_off, int D, int n, global const float* sk,
                       global float* v) {
    const int c = get_global_id(0), i = get_global_id(1), hk = get_global_id(2);
    global const float* s = sk + ((ulong)hk * n + i) * D;
    global const float* M = (global const float*)(pool + m_off) + (ulong)hk * D * D;
    global const float* z = (global const float*)(pool + z_off) + (ulong)hk * D;
    float den = 0.0f;
    for (int r = 0; r < D; ++r) den = fma(s[r], z[r], den);
    if (!(den > 0.0f)) return;
    float acc = 0.0f;
    for (int r = 0; r < D; ++r) acc = fma(s[r], M[(ulong)r * D + c], acc);
    v[((ulong)hk * n + i) * D + c] -= acc * (1.0f / den);
}

// One item per (column c, row r, KV head): M[r][c] += sum_i sk_i[r] v_i[c] in token order;
// the c == 0 items add the sk rows into z.
kernel void fold_update(global uchar* pool, ulong m_off, ulong z_off, int D, int n, global const float* sk,
                        global const float* v) {
    const int c = get_global_id(0), r = get_global_id(1), hk = get_global_id(2);
    global float* M = (global float*)(pool + m_off) + (ulong)hk * D * D;
    global const float* s = sk + (ulong)hk * n * D;
    global const float* vv = v + (ulong)hk * n * D;
    float acc = M[(ulong)r * D + c];
    for (int i = 0; i < n; ++i) acc = fma(s[(ulong)i * D + r], vv[(ulong)i * D + c], acc);
    M[(ulong)r * D + c] = acc;
    if (c == 0) {
        global float* z = (global float*)(pool + z_off) + (ulong)hk * D;
        float zz = z[r];
        for (int i = 0; i < n; ++i) zz += s[(ulong)i * D + r];
        z[r] = zz;
    }
}
