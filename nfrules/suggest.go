package nfrules

import "slices"

// editDistance returns the optimal string alignment distance between a and
// b: insertions, deletions, substitutions and swaps of neighbours cost 1.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// commonPrefix returns the length of the longest common prefix of a and b.
func commonPrefix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// suggest returns "; did you mean X?" for the candidate closest to s, or ""
// when none is close.
func suggest(s string, candidates []string) string {
	if len(s) > 64 {
		return ""
	}
	sorted := slices.Clone(candidates)
	slices.Sort(sorted) // map-fed candidates: ties must not depend on map order
	best, bestD := "", 1<<30
	for _, c := range sorted {
		d := editDistance(s, c)
		if d < bestD || d == bestD && commonPrefix(s, c) > commonPrefix(s, best) {
			best, bestD = c, d
		}
	}
	if best == "" || bestD > max(1, min(len(s), len(best))/3) || bestD >= len(s) {
		return ""
	}
	return "; did you mean " + best + "?"
}
