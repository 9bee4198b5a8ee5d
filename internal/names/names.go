// Package names holds the naming rule that pods, vessel pods and networks
// share.
package names

import (
	"regexp"
	"strings"

	"github.com/podctl/podctl/internal/errdefs"
)

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Validate checks that name can name a pod or a network: 1 to 63
// lower-case letters, digits and dashes, starting with a letter or digit,
// so that it is also a valid hostname label.
func Validate(name string) error {
	if !nameRE.MatchString(name) || strings.HasSuffix(name, "-") {
		return errdefs.New(errdefs.InvalidName,
			"invalid name %q: use 1-63 lower-case letters, digits and dashes, not starting or ending with a dash", name)
	}
	return nil
}
