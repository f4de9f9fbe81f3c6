/*
 * The C kernel of Lion for CPU tensors: one function per (parameter dtype, momentum dtype) pair, lion_<p>_<m> with
 * <p>, <m> in f32, f64, bf16, each updating a whole list of (param, grad, exp_avg[, compensation]) tensors in one
 * OpenMP parallel region.
 *
 * The update rule and its rounding, NaN, caution and Kahan semantics are stated once, in reference.py (the
 * single-tensor kernel this file must reproduce bit for bit): every value is loaded into the compute type (float, or
 * double for f64), the step runs there, and only the stored values are rounded, each once. cpu_kernel.py describes
 * how each step maps onto the code below and checks the built library against the reference before using it.
 * cpu_build.py compiles this file (its hash is part of the cache key) with -ffp-contract=off, so that the only fused
 * multiply-adds are the explicit fma calls of the lerp, as in ATen's vectorised CPU kernels.
 *
 * Arguments of lion_<p>_<m>: nt tensors; P, G, M, K arrays of nt data pointers (contiguous, or dense in one layout
 * shared by the tensors of a triple; K, the Kahan compensations in the parameter's dtype, is read only if kahan);
 * N their element counts (>= 1); lr in float64; decay = 1 - lr * weight_decay; w1 = 1 - beta1; w2 = 1 - beta2;
 * step_plain = lr rounded to the compute type; caution, maximize, kahan as 0/1; nthreads OpenMP threads; tensors of
 * at least big elements are split between the threads, smaller ones go to one thread whole.
 */

#include <stdint.h>
#include <string.h>
#include <math.h>
#include <omp.h>

#define LION_PROTOTYPE(NAME, SP, SM)                                                                           \
    void lion_##NAME(int64_t nt, SP** P, SP** G, SM** M, SP** K, const int64_t* N, double lr, double decay,    \
                     double w1, double w2, double step_plain, int caution, int maximize, int kahan,           \
                     int nthreads, int64_t big);
LION_PROTOTYPE(f32_f32, float, float)
LION_PROTOTYPE(f64_f64, double, double)
LION_PROTOTYPE(bf16_bf16, uint16_t, uint16_t)
LION_PROTOTYPE(f32_bf16, float, uint16_t)
LION_PROTOTYPE(bf16_f32, uint16_t, float)

#define INLINE static inline __attribute__((always_inline))

INLINE float bf16_load(uint16_t h) { uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f; }
INLINE uint16_t bf16_store(float f) {
    /* round to nearest even, NaN to the canonical quiet NaN (c10::BFloat16's conversion); branch-free to vectorize,
     * the NaN select on the 32-bit lanes before the one narrowing (a 16-bit mask cost gcc four more instructions) */
    uint32_t u; memcpy(&u, &f, 4);
    uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
    return (uint16_t)(f != f ? 0x7FC0u : rounded);
}

#define ID(x) (x)

/*
 * Vectors of 16 floats for the steps that store bfloat16. The rounding above costs gcc about eight vector
 * instructions per 16 values and the widening of each loaded value two more, which made the bfloat16 steps bound by
 * arithmetic rather than memory. On CPUs with AVX512-BF16 those steps run a loop written with intrinsics
 * (NAME##_update_vec below): one instruction (vcvtneps2bf16) rounds 16 values to nearest even exactly as bf16_store
 * does, except that it reads subnormal inputs as zero and keeps a NaN's payload. A vector with such a value to store
 * (one vfpclassps per stored vector finds them) is computed again, element by element, by the scalar code, before
 * anything of it is stored; so the bits are those of bf16_store on every CPU. Other CPUs run the scalar code.
 */
#if defined(__AVX512BF16__) && defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512BW__)
#include <immintrin.h>
#define LION_VEC 1
#define BF16_ODD_CLASSES 0xA1 /* QNaN (0x01) | subnormal (0x20) | SNaN (0x80) */
INLINE __m512 vwiden(__m256i h) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); }
INLINE __m512 vload(const void* ptr, const int bf16) {
    return bf16 ? vwiden(_mm256_loadu_si256((const __m256i*)ptr)) : _mm512_loadu_ps((const float*)ptr);
}
INLINE __m256i vround(__m512 v) { __m256bh h = _mm512_cvtneps_pbh(v); __m256i r; memcpy(&r, &h, sizeof r); return r; }
INLINE __mmask16 vodd(__m512 v) { return _mm512_fpclass_ps_mask(v, BF16_ODD_CLASSES); }
INLINE __m512 vneg(__m512 v) { return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(v), _mm512_set1_epi32((int)0x80000000u))); }
/*
 * 32 bfloat16 values in one vector, as two vectors of 16 floats without a shuffle: the values at even positions sit
 * in the low half of each 32-bit lane, those at odd positions in the high half, so a shift and a mask widen them.
 * The step is elementwise, so it runs on the two halves as they are; vpack rounds them back (vcvtne2ps2bf16, the
 * same rounding as vround, per element) and one permute restores the memory order. Widening in memory order cost a
 * shuffle per loaded vector, which bounded the bfloat16 steps on AMD's Zen 4 (16% faster plain, 12% with Kahan).
 */
INLINE __m512 vwiden_even(__m512i v) { return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)); }
INLINE __m512 vwiden_odd(__m512i v) { return _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32((int)0xFFFF0000u))); }
/* bf16_store(v) widened back to float, for values vodd does not flag (round to nearest even on the bits) */
INLINE __m512 vrounded(__m512 v) {
    __m512i u = _mm512_castps_si512(v);
    __m512i odd_bit = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7FFF)), odd_bit);
    return _mm512_castsi512_ps(_mm512_and_si512(r, _mm512_set1_epi32((int)0xFFFF0000u)));
}
INLINE __m512i vpack(__m512 even, __m512 odd, __m512i order) {
    __m512bh h = _mm512_cvtne2ps_pbh(odd, even); /* even results in elements 0-15, odd ones in 16-31 */
    __m512i r; memcpy(&r, &h, sizeof r);
    return _mm512_permutexvar_epi16(order, r);
}
/* One step on 16 floats, the operations of NAME##_element in its order: gv (maximize applied), mv and *x = p (+ k)
 * in; returns the new momentum and leaves the new parameter, before its rounding, in *x. u * step is exact, so it is
 * selected (step, -step, or a zero of u's sign: under caution a dropped direction keeps it, -1 * 0 is -0) rather
 * than multiplied. s1, s2: which branch of each lerp (see NAME##_lerp). */
INLINE __m512 vstep(__m512 gv, __m512 mv, __m512* x, __m512 vdec, __m512 vw1, __m512 vw1m, __m512 vw2, __m512 vw2m,
                    __m512 vst, const int caution, const int s1, const int s2) {
    const __m512 zero = _mm512_setzero_ps(), nzero = _mm512_set1_ps(-0.0f), vnst = vneg(vst);
    __m512 diff = _mm512_sub_ps(gv, mv);
    __m512 d = s1 ? _mm512_fmadd_ps(vw1, diff, mv) : _mm512_fnmadd_ps(diff, vw1m, gv);
    __mmask16 pos = _mm512_cmp_ps_mask(d, zero, _CMP_GT_OQ), neg = _mm512_cmp_ps_mask(d, zero, _CMP_LT_OQ);
    if (caution) {
        __mmask16 gpos = _mm512_cmp_ps_mask(gv, zero, _CMP_GT_OQ), gneg = _mm512_cmp_ps_mask(gv, zero, _CMP_LT_OQ);
        __m512 us = _mm512_mask_mov_ps(_mm512_maskz_mov_ps(neg, nzero), neg & gneg, vnst);
        d = _mm512_mask_mov_ps(us, pos & gpos, vst);
    } else {
        d = _mm512_mask_mov_ps(_mm512_maskz_mov_ps(neg, vnst), pos, vst);
    }
    *x = _mm512_sub_ps(_mm512_mul_ps(*x, vdec), d);
    return s2 ? _mm512_fmadd_ps(vw2, diff, mv) : _mm512_fnmadd_ps(diff, vw2m, gv);
}
static const uint16_t BF16_INTERLEAVE[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
                                             8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
#else
#define LION_VEC 0
#endif

/*
 * OpenMP outlines each parallel region of NAME##_body into one function before any inlining, so flags passed into
 * the body stay run-time values inside the threads' loops, and gcc then leaves some flag combinations' loops scalar
 * (plain bfloat16 ran at half the speed of the compensated step). The switch therefore sits inside the threads'
 * code: NAME##_update_any and NAME##_count_any dispatch once per tensor (or slice) to a copy of the loop in which
 * every flag is a constant the compiler specialises on.
 */
#define LION_UPDATE_CASE(NAME, K_)                                                                             \
    case (K_): NAME##_update(p, g, m, k, lo, hi, decay, w1, w1m, w2, w2m, step,                                \
                             ((K_) >> 4) & 1, ((K_) >> 3) & 1, ((K_) >> 2) & 1, ((K_) >> 1) & 1, (K_) & 1); break;
#define LION_UPDATE_CASES8(NAME, B)                                                                            \
    LION_UPDATE_CASE(NAME, B + 0) LION_UPDATE_CASE(NAME, B + 1) LION_UPDATE_CASE(NAME, B + 2)                  \
    LION_UPDATE_CASE(NAME, B + 3) LION_UPDATE_CASE(NAME, B + 4) LION_UPDATE_CASE(NAME, B + 5)                  \
    LION_UPDATE_CASE(NAME, B + 6) LION_UPDATE_CASE(NAME, B + 7)
#define LION_COUNT_CASE(NAME, K_)                                                                              \
    case (K_): return NAME##_count(g, m, lo, hi, w1, w1m, ((K_) >> 1) & 1, (K_) & 1);

#define DEFINE_LION_SCALAR(NAME, SP, SM, OT, LOADP, STOREP, LOADM, STOREM, FMA)                                \
INLINE OT NAME##_lerp(OT a, OT b, OT w, OT wm, const int small) {                                              \
    OT diff = b - a;                                                                                           \
    return small ? FMA(w, diff, a) : FMA(-diff, wm, b);                                                        \
}                                                                                                              \
/* One element in the compute type: g (maximize applied), m and x = p (+ k) loaded; returns the new momentum and\
 * leaves the new parameter, before its rounding, in *x. */                                                    \
INLINE OT NAME##_element(OT gv, OT mv, OT* x, OT decay, OT w1, OT w1m, OT w2, OT w2m, OT step,                 \
                         const int caution, const int s1, const int s2) {                                      \
    OT d = NAME##_lerp(mv, gv, w1, w1m, s1);                                                                   \
    OT u = (OT)(d > 0) - (OT)(d < 0);                                                                          \
    if (caution) { OT a = (u * gv > 0) ? (OT)1 : (OT)0; u = u * a; }                                           \
    *x = *x * decay;                                                                                           \
    *x = *x - u * step;                                                                                        \
    return NAME##_lerp(mv, gv, w2, w2m, s2);                                                                   \
}                                                                                                              \
/* Element i loaded, updated and stored. */                                                                    \
INLINE void NAME##_one(SP* restrict p, const SP* restrict g, SM* restrict m, SP* restrict k, int64_t i, OT decay,\
                       OT w1, OT w1m, OT w2, OT w2m, OT step, const int caution, const int maximize,           \
                       const int kahan, const int s1, const int s2) {                                          \
    OT gv = maximize ? -LOADP(g[i]) : LOADP(g[i]);                                                             \
    OT x = kahan ? LOADP(p[i]) + LOADP(k[i]) : LOADP(p[i]);                                                    \
    OT mn = NAME##_element(gv, LOADM(m[i]), &x, decay, w1, w1m, w2, w2m, step, caution, s1, s2);               \
    SP pn = STOREP(x);                                                                                         \
    p[i] = pn;                                                                                                 \
    if (kahan) k[i] = STOREP(x - LOADP(pn));                                                                   \
    m[i] = STOREM(mn);                                                                                         \
}

/* Elements lo, lo + 16, ... in vectors of 16 while whole ones remain (PB16, MB16: parameters, momenta stored as
 * bfloat16; both: blocks of 32 first, see vwiden_even); returns where the scalar code takes over. Each vector's step
 * is vstep, the operations of NAME##_element in the same order. */
#define DEFINE_LION_VEC(NAME, SP, SM, PB16, MB16)                                                              \
static inline __attribute__((always_inline)) int64_t NAME##_update_vec(                                        \
        SP* restrict p, const SP* restrict g, SM* restrict m, SP* restrict k, int64_t lo, int64_t hi, float decay,\
        float w1, float w1m, float w2, float w2m, float step, const int caution, const int maximize,           \
        const int kahan, const int s1, const int s2) {                                                         \
    const __m512 vdec = _mm512_set1_ps(decay), vw1 = _mm512_set1_ps(w1), vw1m = _mm512_set1_ps(w1m);           \
    const __m512 vw2 = _mm512_set1_ps(w2), vw2m = _mm512_set1_ps(w2m), vst = _mm512_set1_ps(step);             \
    const __m512 zero = _mm512_setzero_ps();                                                                   \
    int64_t i = lo;                                                                                            \
    if (PB16 && MB16) { /* 32 at a time, the two halves of each lane apart (see vwiden_even) */                \
        const __m512i order = _mm512_loadu_si512((const void*)BF16_INTERLEAVE);                                \
        for (; i + 32 <= hi; i += 32) {                                                                        \
            const __m512i G = _mm512_loadu_si512((const void*)(g + i)), M = _mm512_loadu_si512((const void*)(m + i));\
            const __m512i P = _mm512_loadu_si512((const void*)(p + i));                                        \
            const __m512i K = kahan ? _mm512_loadu_si512((const void*)(k + i)) : _mm512_setzero_si512();       \
            __m512 xs[2], rs[2], ms[2];                                                                        \
            __mmask16 odd = 0;                                                                                 \
            for (int half = 0; half < 2; ++half) {                                                             \
                __m512 gv = half ? vwiden_odd(G) : vwiden_even(G);                                             \
                if (maximize) gv = vneg(gv);                                                                   \
                __m512 mv = half ? vwiden_odd(M) : vwiden_even(M);                                             \
                __m512 x = half ? vwiden_odd(P) : vwiden_even(P);                                              \
                if (kahan) x = _mm512_add_ps(x, half ? vwiden_odd(K) : vwiden_even(K));                        \
                __m512 mn = vstep(gv, mv, &x, vdec, vw1, vw1m, vw2, vw2m, vst, caution, s1, s2);               \
                odd |= vodd(x) | vodd(mn);                                                                     \
                if (kahan) { rs[half] = _mm512_sub_ps(x, vrounded(x)); odd |= vodd(rs[half]); }                \
                xs[half] = x;                                                                                  \
                ms[half] = mn;                                                                                 \
            }                                                                                                  \
            if (odd) { /* nothing of these 32 is stored yet: the scalar code does them */                      \
                for (int64_t j = i; j < i + 32; ++j)                                                           \
                    NAME##_one(p, g, m, k, j, decay, w1, w1m, w2, w2m, step, caution, maximize, kahan, s1, s2);\
                continue;                                                                                      \
            }                                                                                                  \
            _mm512_storeu_si512((void*)(p + i), vpack(xs[0], xs[1], order));                                   \
            if (kahan) _mm512_storeu_si512((void*)(k + i), vpack(rs[0], rs[1], order));                        \
            _mm512_storeu_si512((void*)(m + i), vpack(ms[0], ms[1], order));                                   \
        }                                                                                                      \
    }                                                                                                          \
    for (; i + 16 <= hi; i += 16) {                                                                            \
        __m512 gv = vload(g + i, PB16);                                                                        \
        if (maximize) gv = vneg(gv);                                                                           \
        __m512 mv = vload(m + i, MB16);                                                                        \
        __m512 x = vload(p + i, PB16);                                                                         \
        if (kahan) x = _mm512_add_ps(x, vload(k + i, PB16));                                                   \
        __m512 mn = vstep(gv, mv, &x, vdec, vw1, vw1m, vw2, vw2m, vst, caution, s1, s2);                       \
        __mmask16 odd = 0;                                                                                     \
        __m256i ph = _mm256_setzero_si256(), kh = ph, mh = ph;                                                 \
        __m512 rest = zero;                                                                                    \
        if (PB16) {                                                                                            \
            odd |= vodd(x);                                                                                    \
            ph = vround(x);                                                                                    \
            if (kahan) { rest = _mm512_sub_ps(x, vwiden(ph)); odd |= vodd(rest); kh = vround(rest); }          \
        } else if (kahan) {                                                                                    \
            rest = _mm512_sub_ps(x, x);                                                                        \
        }                                                                                                      \
        if (MB16) { odd |= vodd(mn); mh = vround(mn); }                                                        \
        if (odd) { /* nothing of this vector is stored yet: the scalar code does it whole */                   \
            for (int64_t j = i; j < i + 16; ++j)                                                               \
                NAME##_one(p, g, m, k, j, decay, w1, w1m, w2, w2m, step, caution, maximize, kahan, s1, s2);    \
            continue;                                                                                          \
        }                                                                                                      \
        if (PB16) _mm256_storeu_si256((__m256i*)(void*)(p + i), ph); else _mm512_storeu_ps((void*)(p + i), x); \
        if (kahan) {                                                                                           \
            if (PB16) _mm256_storeu_si256((__m256i*)(void*)(k + i), kh); else _mm512_storeu_ps((void*)(k + i), rest);\
        }                                                                                                      \
        if (MB16) _mm256_storeu_si256((__m256i*)(void*)(m + i), mh); else _mm512_storeu_ps((void*)(m + i), mn);\
    }                                                                                                          \
    return i;                                                                                                  \
}

#define DEFINE_LION_NO_VEC(NAME, SP, SM, OT)                                                                   \
static inline __attribute__((always_inline)) int64_t NAME##_update_vec(                                        \
        SP* restrict p, const SP* restrict g, SM* restrict m, SP* restrict k, int64_t lo, int64_t hi, OT decay,\
        OT w1, OT w1m, OT w2, OT w2m, OT step, const int caution, const int maximize, const int kahan, const int s1,\
        const int s2) {                                                                                        \
    (void)p; (void)g; (void)m; (void)k; (void)hi; (void)decay; (void)w1; (void)w1m; (void)w2; (void)w2m;       \
    (void)step; (void)caution; (void)maximize; (void)kahan; (void)s1; (void)s2;                                \
    return lo;                                                                                                 \
}

#define DEFINE_LION(NAME, SP, SM, OT, LOADP, STOREP, LOADM, STOREM, FMA, FABS, VEC)                            \
INLINE void NAME##_update(SP* restrict p, const SP* restrict g, SM* restrict m, SP* restrict k, int64_t lo,    \
                          int64_t hi, OT decay, OT w1, OT w1m, OT w2, OT w2m, OT step, const int caution,      \
                          const int maximize, const int kahan, const int s1, const int s2) {                   \
    int64_t i = VEC ? NAME##_update_vec(p, g, m, k, lo, hi, decay, w1, w1m, w2, w2m, step, caution, maximize, kahan,\
                                        s1, s2) : lo;                                                          \
    for (; i < hi; ++i) NAME##_one(p, g, m, k, i, decay, w1, w1m, w2, w2m, step, caution, maximize, kahan, s1, s2);\
}                                                                                                              \
INLINE int64_t NAME##_count(const SP* restrict g, const SM* restrict m, int64_t lo, int64_t hi, OT w1, OT w1m,  \
                            const int maximize, const int s1) {                                                \
    int64_t total = 0;                                                                                         \
    for (int64_t b = lo; b < hi; b += (1 << 20)) {                                                             \
        int64_t e = b + (1 << 20) < hi ? b + (1 << 20) : hi;                                                   \
        int32_t c = 0;                                                                                         \
        for (int64_t i = b; i < e; ++i) {                                                                      \
            OT gv = maximize ? -LOADP(g[i]) : LOADP(g[i]);                                                     \
            OT d = NAME##_lerp(LOADM(m[i]), gv, w1, w1m, s1);                                                  \
            c += ((d > 0) & (gv > 0)) | ((d < 0) & (gv < 0));                                                  \
        }                                                                                                      \
        total += c;                                                                                            \
    }                                                                                                          \
    return total;                                                                                              \
}                                                                                                              \
static void NAME##_update_any(SP* restrict p, const SP* restrict g, SM* restrict m, SP* restrict k, int64_t lo, \
                              int64_t hi, OT decay, OT w1, OT w1m, OT w2, OT w2m, OT step, int flags) {         \
    switch (flags) {                                                                                           \
        LION_UPDATE_CASES8(NAME, 0) LION_UPDATE_CASES8(NAME, 8)                                                \
        LION_UPDATE_CASES8(NAME, 16) LION_UPDATE_CASES8(NAME, 24)                                              \
    }                                                                                                          \
}                                                                                                              \
static int64_t NAME##_count_any(const SP* restrict g, const SM* restrict m, int64_t lo, int64_t hi, OT w1,      \
                                OT w1m, int flags) {                                                           \
    switch (flags) {                                                                                           \
        LION_COUNT_CASE(NAME, 0) LION_COUNT_CASE(NAME, 1) LION_COUNT_CASE(NAME, 2) LION_COUNT_CASE(NAME, 3)    \
    }                                                                                                          \
    return 0;                                                                                                  \
}                                                                                                              \
INLINE OT NAME##_caution_step(double lr, int64_t count, int64_t n) {                                          \
    double mean = (double)count / (double)(n > 0 ? n : 1);                                                     \
    if (mean < 1e-3) mean = 1e-3;                                                                              \
    return (OT)(lr / mean);                                                                                    \
}                                                                                                              \
void lion_##NAME(int64_t nt, SP** P, SP** G, SM** M, SP** K, const int64_t* N, double lr, double decay,         \
                 double w1, double w2, double step_plain, int caution, int maximize, int kahan, int nthreads,  \
                 int64_t big) {                                                                                \
    OT w1o = (OT)w1, w2o = (OT)w2, w1m = (OT)1 - w1o, w2m = (OT)1 - w2o;                                       \
    int s1 = FABS(w1o) < (OT)0.5, s2 = FABS(w2o) < (OT)0.5;                                                    \
    OT dec = (OT)decay, st = (OT)step_plain;                                                                   \
    int flags = caution * 16 + maximize * 8 + kahan * 4 + s1 * 2 + s2, count_flags = maximize * 2 + s1;        \
    _Pragma("omp parallel for schedule(dynamic, 1) num_threads(nthreads)")                                     \
    for (int64_t t = 0; t < nt; ++t) {                                                                         \
        int64_t n = N[t];                                                                                      \
        if (n >= big) continue;                                                                                \
        OT step = st;                                                                                          \
        if (caution) step = NAME##_caution_step(lr, NAME##_count_any(G[t], M[t], 0, n, w1o, w1m, count_flags), n); \
        NAME##_update_any(P[t], G[t], M[t], kahan ? K[t] : 0, 0, n, dec, w1o, w1m, w2o, w2m, step, flags);     \
    }                                                                                                          \
    for (int64_t t = 0; t < nt; ++t) {                                                                         \
        int64_t n = N[t];                                                                                      \
        if (n < big) continue;                                                                                 \
        SP* p = P[t]; const SP* g = G[t]; SM* m = M[t]; SP* k = kahan ? K[t] : 0;                              \
        OT step = st;                                                                                          \
        if (caution) {                                                                                         \
            int64_t cnt = 0;                                                                                   \
            _Pragma("omp parallel num_threads(nthreads) reduction(+:cnt)")                                     \
            {                                                                                                  \
                int nth = omp_get_num_threads(), id = omp_get_thread_num();                                    \
                cnt += NAME##_count_any(g, m, n * id / nth, n * (id + 1) / nth, w1o, w1m, count_flags);        \
            }                                                                                                  \
            step = NAME##_caution_step(lr, cnt, n);                                                            \
        }                                                                                                      \
        _Pragma("omp parallel num_threads(nthreads)")                                                          \
        {                                                                                                      \
            int nth = omp_get_num_threads(), id = omp_get_thread_num();                                        \
            int64_t lo = n * id / nth, hi = n * (id + 1) / nth;                                                \
            NAME##_update_any(p, g, m, k, lo, hi, dec, w1o, w1m, w2o, w2m, step, flags);                       \
        }                                                                                                      \
    }                                                                                                          \
}

/* name, parameter type, momentum type, compute type, their loads and stores, fma (and fabs) */
DEFINE_LION_SCALAR(f32_f32, float, float, float, ID, ID, ID, ID, fmaf)
DEFINE_LION_SCALAR(f64_f64, double, double, double, ID, ID, ID, ID, fma)
DEFINE_LION_SCALAR(bf16_bf16, uint16_t, uint16_t, float, bf16_load, bf16_store, bf16_load, bf16_store, fmaf)
DEFINE_LION_SCALAR(f32_bf16, float, uint16_t, float, ID, ID, bf16_load, bf16_store, fmaf)
DEFINE_LION_SCALAR(bf16_f32, uint16_t, float, float, bf16_load, bf16_store, ID, ID, fmaf)

/* float32 and float64 steps need no intrinsics: gcc vectorizes their scalar loops near memory speed */
DEFINE_LION_NO_VEC(f32_f32, float, float, float)
DEFINE_LION_NO_VEC(f64_f64, double, double, double)
#if LION_VEC
/* name, parameter type, momentum type, whether parameters and momenta are stored as bfloat16 */
DEFINE_LION_VEC(bf16_bf16, uint16_t, uint16_t, 1, 1)
DEFINE_LION_VEC(f32_bf16, float, uint16_t, 0, 1)
DEFINE_LION_VEC(bf16_f32, uint16_t, float, 1, 0)
#else
DEFINE_LION_NO_VEC(bf16_bf16, uint16_t, uint16_t, float)
DEFINE_LION_NO_VEC(f32_bf16, float, uint16_t, float)
DEFINE_LION_NO_VEC(bf16_f32, uint16_t, float, float)
#endif

DEFINE_LION(f32_f32, float, float, float, ID, ID, ID, ID, fmaf, fabsf, 0)
DEFINE_LION(f64_f64, double, double, double, ID, ID, ID, ID, fma, fabs, 0)
DEFINE_LION(bf16_bf16, uint16_t, uint16_t, float, bf16_load, bf16_store, bf16_load, bf16_store, fmaf, fabsf, LION_VEC)
DEFINE_LION(f32_bf16, float, uint16_t, float, ID, ID, bf16_load, bf16_store, fmaf, fabsf, LION_VEC)
DEFINE_LION(bf16_f32, uint16_t, float, float, bf16_load, bf16_store, ID, ID, fmaf, fabsf, LION_VEC)
