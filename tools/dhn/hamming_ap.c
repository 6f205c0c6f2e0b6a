/* AP@R of Hamming ranking with ties in database order, without sorting.
 *
 * Walking the database in index order, item j at distance v is ranked at
 *   pos = (# items at distance < v) + (# items at distance v with index <= j),
 * and the relevant items ranked at or before it are
 *   (# relevant at distance < v) + (# relevant at distance v with index <= j).
 * Two O(N) passes per query: a histogram, then the walk. AP = sum of P@pos over relevant
 * items with pos <= R, divided by their number (0 when there is none). */
#include <stdint.h>
#include <stdlib.h>

void hamming_ap(const uint64_t *qw, const uint64_t *dbw, int64_t n, int32_t words,
                const uint64_t *ql, const uint64_t *dbl, int32_t lwords, int32_t k, int64_t R,
                int64_t nq, double *ap, uint16_t *dist, uint8_t *rel)
{
    int64_t *cnt = calloc(4 * (size_t)(k + 2), sizeof(int64_t));
    int64_t *relcnt = cnt + (k + 2), *seen = relcnt + (k + 2), *relseen = seen + (k + 2);
    for (int64_t q = 0; q < nq; q++) {
        const uint64_t *a = qw + q * words, *la = ql + q * lwords;
        for (int v = 0; v < 4 * (k + 2); v++) cnt[v] = 0;
        if (words == 1 && lwords == 1) {   /* the common case (<= 64 bits and labels), unrolled */
            const uint64_t a0 = a[0], la0 = la[0];
            for (int64_t j = 0; j < n; j++) {
                int d = __builtin_popcountll(a0 ^ dbw[j]), r = (la0 & dbl[j]) != 0;
                dist[j] = (uint16_t)d;
                rel[j] = (uint8_t)r;
                cnt[d]++;
                relcnt[d] += r;
            }
        } else {
            for (int64_t j = 0; j < n; j++) {
                const uint64_t *b = dbw + j * words, *lb = dbl + j * lwords;
                int d = 0, r = 0;
                for (int w = 0; w < words; w++) d += __builtin_popcountll(a[w] ^ b[w]);
                for (int w = 0; w < lwords; w++) r |= (la[w] & lb[w]) != 0;
                dist[j] = (uint16_t)d;
                rel[j] = (uint8_t)r;
                cnt[d]++;
                relcnt[d] += r;
            }
        }
        /* cnt/relcnt become the counts at distances < v */
        int64_t below = 0, relbelow = 0;
        for (int v = 0; v <= k; v++) {
            int64_t c = cnt[v], rc = relcnt[v];
            cnt[v] = below; relcnt[v] = relbelow;
            below += c; relbelow += rc;
        }
        double sum = 0.0;
        int64_t hits = 0;
        for (int64_t j = 0; j < n; j++) {
            int v = dist[j];
            int64_t pos = cnt[v] + ++seen[v];
            if (rel[j]) {
                int64_t r_at = relcnt[v] + ++relseen[v];
                if (pos <= R) { sum += (double)r_at / (double)pos; hits++; }
            }
        }
        ap[q] = hits ? sum / (double)hits : 0.0;
    }
    free(cnt);
}

/* The top k of Hamming ranking per query, ties in database order, without sorting: one pass for
 * the distances and their histogram, a threshold t (the smallest distance whose cumulative count
 * reaches k), then a walk placing each item at distance <= t at rank
 *   (# items at smaller distance) + (# items seen so far at its distance).
 * out_idx/out_dist are nq×k; ranks past the database size get index -1. */
void hamming_topk(const uint64_t *qw, const uint64_t *dbw, int64_t n, int32_t words, int32_t bits,
                  int64_t k, int64_t nq, int64_t *out_idx, int32_t *out_dist, uint16_t *dist)
{
    int64_t *cnt = calloc(2 * (size_t)(bits + 2), sizeof(int64_t)), *seen = cnt + (bits + 2);
    int64_t kk = k < n ? k : n;
    for (int64_t q = 0; q < nq; q++) {
        const uint64_t *a = qw + q * words;
        int64_t *oi = out_idx + q * k;
        int32_t *od = out_dist + q * k;
        for (int v = 0; v < 2 * (bits + 2); v++) cnt[v] = 0;
        if (words == 1) {
            const uint64_t a0 = a[0];
            for (int64_t j = 0; j < n; j++) { int d = __builtin_popcountll(a0 ^ dbw[j]); dist[j] = (uint16_t)d; cnt[d]++; }
        } else {
            for (int64_t j = 0; j < n; j++) {
                const uint64_t *b = dbw + j * words;
                int d = 0;
                for (int w = 0; w < words; w++) d += __builtin_popcountll(a[w] ^ b[w]);
                dist[j] = (uint16_t)d;
                cnt[d]++;
            }
        }
        int t = 0;
        int64_t below = 0;
        for (t = 0; t <= bits; t++) {      /* cnt becomes the count at smaller distances */
            int64_t c = cnt[t];
            cnt[t] = below;
            below += c;
            if (below >= kk) break;
        }
        for (int64_t j = 0; j < n; j++) {
            int v = dist[j];
            if (v > t) continue;
            int64_t pos = cnt[v] + seen[v]++;
            if (pos < kk) { oi[pos] = j; od[pos] = v; }
        }
        for (int64_t r = kk; r < k; r++) { oi[r] = -1; od[r] = -1; }
    }
    free(cnt);
}
