// Command uplinkctl shows and steers a running uplinkd (pkg/ctl; the API
// it speaks is pkg/control).
package main

import (
	"os"

	"github.com/uplinkd/uplinkd/pkg/ctl"
)

func main() {
	os.Exit(ctl.Main(os.Args[1:], os.Stdout, os.Stderr))
}
