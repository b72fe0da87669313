package mirror

import "testing"

func TestRuleIDFromPrefix(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"nfm:0", 0}, {"nfm:17", 17}, {"nfm:", -1}, {"nfm:1x", -1}, {"other:3", -1}, {"", -1},
		{"nfm:99999999999999999999", -1},
	}
	for _, tt := range tests {
		if got := ruleIDFromPrefix(tt.in); got != tt.want {
			t.Errorf("ruleIDFromPrefix(%q) = %d, want %d", tt.in, got, tt.want)
		}
		if got := ruleIDFromPrefix([]byte(tt.in)); got != tt.want {
			t.Errorf("ruleIDFromPrefix([]byte(%q)) = %d, want %d", tt.in, got, tt.want)
		}
	}
}
