package vgpu

import (
	"slices"
	"strings"
	"unicode/utf8"
)

// Allows reports whether a pod with this selector may use g. A non-empty
// include list restricts the GPUs to those it names; an exclude list removes
// GPUs and wins over an include list that names the same GPU. Model patterns
// match as case-insensitive substrings, UUIDs exactly. A blank model pattern
// matches nothing (so a stray empty item never excludes every GPU).
func (s Selector) Allows(g GPU) bool { return s.verdict(&g) == selected }

// selectorVerdict says whether a selector lets a GPU through, and if not,
// which of its rules kept it out (for Unfit's explanation).
type selectorVerdict uint8

const (
	selected selectorVerdict = iota
	excludedByUUID
	excludedByModel
)

func (s *Selector) verdict(g *GPU) selectorVerdict {
	if len(s.IncludeModels)+len(s.ExcludeModels)+len(s.IncludeUUIDs)+len(s.ExcludeUUIDs) == 0 {
		return selected // the common case, on the estimator's hot path
	}
	if slices.Contains(s.ExcludeUUIDs, g.UUID) ||
		(len(s.IncludeUUIDs) > 0 && !slices.Contains(s.IncludeUUIDs, g.UUID)) {
		return excludedByUUID
	}
	if anyContainsFold(g.Model, s.ExcludeModels) ||
		(len(s.IncludeModels) > 0 && !anyContainsFold(g.Model, s.IncludeModels)) {
		return excludedByModel
	}
	return selected
}

func anyContainsFold(model string, patterns []string) bool {
	for _, p := range patterns {
		if containsFold(model, p) {
			return true
		}
	}
	return false
}

// containsFold reports whether substr occurs in s, ignoring case. Model
// names are ASCII, so that path compares in place without allocating (the
// estimator runs this for every GPU of thousands of nodes); other text falls
// back to lower-casing both sides.
func containsFold(s, substr string) bool {
	if substr == "" {
		return false
	}
	if !isASCII(s) || !isASCII(substr) {
		return strings.Contains(strings.ToLower(s), strings.ToLower(substr))
	}
	for i := 0; i+len(substr) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(substr)], substr) {
			return true
		}
	}
	return false
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
