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
 * Storing a run of float results as bfloat16. The rounding above costs gcc about eight vector instructions per 16
 * values, which made the bfloat16 steps compute-bound. CPUs with AVX512-BF16 convert 16 values in one instruction
 * (vcvtneps2bf16) that rounds to nearest even exactly as bf16_store does, except that it reads subnormal inputs as
 * zero and keeps a NaN's payload. A vector holding either (one vfpclassps tells) takes bf16_store instead, so the
 * bits are the same on every CPU; other CPUs take bf16_store throughout.
 */
#if defined(__AVX512BF16__) && defined(__AVX512F__) && defined(__AVX512VL__)
#include <immintrin.h>
#define BF16_ODD_CLASSES 0xA1 /* QNaN (0x01) | subnormal (0x20) | SNaN (0x80) */
INLINE __m512 bf16_widen(__m256bh h) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32((__m256i)h), 16)); }
static void bf16_store_n(uint16_t* restrict dst, const float* restrict src, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(src + i);
        if (_mm512_fpclass_ps_mask(v, BF16_ODD_CLASSES)) {
            for (int j = 0; j < 16; ++j) dst[i + j] = bf16_store(src[i + j]);
        } else {
            __m256bh h = _mm512_cvtneps_pbh(v);
            memcpy(dst + i, &h, sizeof h);
        }
    }
    for (; i < n; ++i) dst[i] = bf16_store(src[i]);
}
/* Kahan summation's two stores in one pass: p = round(x), then k = round(x - p). */
static void bf16_store_kahan_n(uint16_t* restrict p, uint16_t* restrict k, const float* restrict src, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 x = _mm512_loadu_ps(src + i);
        __m256bh h = _mm512_cvtneps_pbh(x);
        __m512 rest = _mm512_sub_ps(x, bf16_widen(h));
        if (_mm512_fpclass_ps_mask(x, BF16_ODD_CLASSES) | _mm512_fpclass_ps_mask(rest, BF16_ODD_CLASSES)) {
            for (int j = 0; j < 16; ++j) {
                uint16_t pn = bf16_store(src[i + j]);
                p[i + j] = pn;
                k[i + j] = bf16_store(src[i + j] - bf16_load(pn));
            }
        } else {
            __m256bh c = _mm512_cvtneps_pbh(rest);
            memcpy(p + i, &h, sizeof h);
            memcpy(k + i, &c, sizeof c);
        }
    }
    for (; i < n; ++i) {
        uint16_t pn = bf16_store(src[i]);
        p[i] = pn;
        k[i] = bf16_store(src[i] - bf16_load(pn));
    }
}
#else
static void bf16_store_n(uint16_t* restrict dst, const float* restrict src, int64_t n) {
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_store(src[i]);
}
static void bf16_store_kahan_n(uint16_t* restrict p, uint16_t* restrict k, const float* restrict src, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        uint16_t pn = bf16_store(src[i]);
        p[i] = pn;
        k[i] = bf16_store(src[i] - bf16_load(pn));
    }
}
#endif
/* The same for a dtype stored as is (float, double): the update loop stores those directly, never through this. */
#define NO_STORE_N(dst, src, n) ((void)(dst), (void)(src), (void)(n))
#define NO_STORE_KAHAN_N(dst, comp, src, n) ((void)(dst), (void)(comp), (void)(src), (void)(n))
#define BF16_STORE_N(dst, src, n) bf16_store_n((dst), (src), (n))
#define BF16_STORE_KAHAN_N(dst, comp, src, n) bf16_store_kahan_n((dst), (comp), (src), (n))

/* Values per round of a bfloat16 update: the loop computes them into float buffers on the stack, then stores them. */
#define LION_CHUNK 256


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

#define DEFINE_LION(NAME, SP, SM, OT, LOADP, STOREP, LOADM, STOREM, FMA, FABS, PBUF, STOREP_N, STOREP_KAHAN_N, \
                    MBUF, STOREM_N)                                                                            \
INLINE OT NAME##_lerp(OT a, OT b, OT w, OT wm, const int small) {                                             \
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
INLINE void NAME##_update(SP* restrict p, const SP* restrict g, SM* restrict m, SP* restrict k, int64_t lo,    \
                          int64_t hi, OT decay, OT w1, OT w1m, OT w2, OT w2m, OT step, const int caution,      \
                          const int maximize, const int kahan, const int s1, const int s2) {                   \
    if (!PBUF && !MBUF) {                                                                                      \
        for (int64_t i = lo; i < hi; ++i) {                                                                    \
            OT gv = maximize ? -LOADP(g[i]) : LOADP(g[i]);                                                     \
            OT x = kahan ? LOADP(p[i]) + LOADP(k[i]) : LOADP(p[i]);                                            \
            OT mn = NAME##_element(gv, LOADM(m[i]), &x, decay, w1, w1m, w2, w2m, step, caution, s1, s2);       \
            SP pn = STOREP(x);                                                                                 \
            p[i] = pn;                                                                                         \
            if (kahan) k[i] = STOREP(x - LOADP(pn));                                                           \
            m[i] = STOREM(mn);                                                                                 \
        }                                                                                                      \
        return;                                                                                                \
    }                                                                                                          \
    /* bfloat16 stores: compute a round into float buffers, then store them with bf16_store_n */               \
    OT xb[LION_CHUNK], mb[LION_CHUNK];                                                                         \
    for (int64_t b = lo; b < hi; b += LION_CHUNK) {                                                            \
        int64_t len = hi - b < LION_CHUNK ? hi - b : LION_CHUNK;                                               \
        SP* restrict pb = p + b; const SP* restrict gb = g + b; SM* restrict mp = m + b;                       \
        for (int64_t i = 0; i < len; ++i) {                                                                    \
            OT gv = maximize ? -LOADP(gb[i]) : LOADP(gb[i]);                                                   \
            OT x = kahan ? LOADP(pb[i]) + LOADP(k[b + i]) : LOADP(pb[i]);                                      \
            OT mn = NAME##_element(gv, LOADM(mp[i]), &x, decay, w1, w1m, w2, w2m, step, caution, s1, s2);      \
            if (PBUF) xb[i] = x; else pb[i] = STOREP(x);                                                       \
            if (MBUF) mb[i] = mn; else mp[i] = STOREM(mn);                                                     \
        }                                                                                                      \
        if (PBUF) {                                                                                            \
            if (kahan) STOREP_KAHAN_N(pb, k + b, xb, len); else STOREP_N(pb, xb, len);                         \
        }                                                                                                      \
        if (MBUF) STOREM_N(mp, mb, len);                                                                       \
    }                                                                                                          \
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

/* name, param type, momentum type, compute type, their loads and stores, fma, fabs; then whether parameters and
 * momenta are stored through the float buffers (bfloat16) and the function that stores such a buffer */
DEFINE_LION(f32_f32, float, float, float, ID, ID, ID, ID, fmaf, fabsf, 0, NO_STORE_N, NO_STORE_KAHAN_N, 0, NO_STORE_N)
DEFINE_LION(f64_f64, double, double, double, ID, ID, ID, ID, fma, fabs, 0, NO_STORE_N, NO_STORE_KAHAN_N, 0,
            NO_STORE_N)
DEFINE_LION(bf16_bf16, uint16_t, uint16_t, float, bf16_load, bf16_store, bf16_load, bf16_store, fmaf, fabsf,
            1, BF16_STORE_N, BF16_STORE_KAHAN_N, 1, BF16_STORE_N)
DEFINE_LION(f32_bf16, float, uint16_t, float, ID, ID, bf16_load, bf16_store, fmaf, fabsf, 0, NO_STORE_N,
            NO_STORE_KAHAN_N, 1, BF16_STORE_N)
DEFINE_LION(bf16_f32, uint16_t, float, float, bf16_load, bf16_store, ID, ID, fmaf, fabsf, 1, BF16_STORE_N,
            BF16_STORE_KAHAN_N, 0, NO_STORE_N)
