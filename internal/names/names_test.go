package names

import (
	"strings"
	"testing"

	"github.com/podctl/podctl/internal/errdefs"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"0", true},
		{"web", true},
		{"web-1", true},
		{"1web", true},
		{"a-b-c-d", true},
		{"a--b", true},
		{strings.Repeat("a", 63), true},
		{"a" + strings.Repeat("-", 61) + "b", true},

		{"", false},
		{strings.Repeat("a", 64), false},
		{"-web", false},
		{"web-", false},
		{"-", false},
		{"Web", false},
		{"WEB", false},
		{"web_1", false},
		{"web.1", false},
		{"web 1", false},
		{" web", false},
		{"web\n", false},
		{"we/b", false},
		{"..", false},
		{"wéb", false},
	}
	for _, tt := range tests {
		err := Validate(tt.name)
		if tt.ok {
			if err != nil {
				t.Errorf("Validate(%q) = %v, want nil", tt.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("Validate(%q) = nil, want an error", tt.name)
			continue
		}
		if k := errdefs.KindOf(err); k != errdefs.InvalidName {
			t.Errorf("Validate(%q): kind %d, want InvalidName (%d)", tt.name, k, errdefs.InvalidName)
		}
	}
}
