// Package version carries the build's version, set by the Makefile with
// -ldflags "-X github.com/uplinkd/uplinkd/pkg/version.Version=...".
package version

import "runtime/debug"

// Version is the release or `git describe` of the build.
var Version = ""

// String is the version, falling back to the VCS revision Go recorded.
func String() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", ""
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "-dirty"
				}
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" {
			return "dev-" + rev + dirty
		}
	}
	return "dev"
}
