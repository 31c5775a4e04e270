// Command uplinkd is the uplink failover switch daemon: it loads the BPF
// data plane, watches the uplinks and moves every guest to a working one.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/vishvananda/netlink"

	"github.com/uplinkd/uplinkd/pkg/config"
	"github.com/uplinkd/uplinkd/pkg/daemon"
	"github.com/uplinkd/uplinkd/pkg/datapath"
	"github.com/uplinkd/uplinkd/pkg/limits"
	"github.com/uplinkd/uplinkd/pkg/nldump"
	"github.com/uplinkd/uplinkd/pkg/sdnotify"
	"github.com/uplinkd/uplinkd/pkg/version"
)

func main() {
	configPath := flag.String("config", config.DefaultPath, "configuration file")
	check := flag.Bool("check", false, "validate the configuration and exit")
	cleanup := flag.Bool("cleanup", false, "detach every program and remove every map uplinkd pinned, then exit (guests and host ports lose their network; "+
		"host ports stay, with their addresses: see -remove-host-ports)")
	removeHostPorts := flag.Bool("remove-host-ports", false, "with -cleanup: also delete the configured host ports' veth pairs, "+
		"which takes the host's addresses on them away (do not run it over SSH through them)")
	showVersion := flag.Bool("version", false, "print the version and exit")
	printExample := flag.Bool("example-config", false, "print an example configuration and exit")
	flag.Parse()

	switch {
	case *showVersion:
		fmt.Println("uplinkd", version.String())
		return
	case *printExample:
		os.Stdout.Write(config.Example)
		return
	}
	if *removeHostPorts && !*cleanup {
		fmt.Fprintln(os.Stderr, "uplinkd: -remove-host-ports is only valid with -cleanup")
		os.Exit(2)
	}
	cfg, err := config.Load(*configPath)
	if *cleanup {
		// Host ports are left in place unless asked: the host's own
		// addresses are on them. Removing them needs the configuration
		// that names them.
		if *removeHostPorts && err != nil {
			fatal("configuration (-remove-host-ports needs it)", err)
		}
		pin := limits.DefaultPinPath
		if err == nil {
			pin = cfg.PinPath
		}
		if err := datapath.Remove(pin); err != nil {
			fatal("cleanup", err)
		}
		fmt.Println("uplinkd: removed everything pinned under", pin)
		if *removeHostPorts {
			if err := removeConfiguredHostPorts(cfg, os.Stdout); err != nil {
				fatal("remove host ports", err)
			}
		}
		return
	}
	if err != nil {
		fatal("configuration", err)
	}
	warnings := config.UplinkAddressWarnings(cfg, uplinkAddresses(cfg))
	if *check {
		for _, w := range warnings {
			fmt.Fprintln(os.Stderr, "uplinkd: warning:", w)
		}
		fmt.Println("uplinkd: configuration is valid")
		return
	}
	level := new(slog.LevelVar)
	level.Set(cfg.LogLevel)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)
	for _, w := range warnings {
		log.Warn(w)
	}

	d, err := daemon.New(cfg, log)
	if err != nil {
		fatal("start", err)
	}
	defer d.Close()
	d.ConfigPath, d.Level = *configPath, level
	d.OnReady = func() {
		if _, err := sdnotify.Notify("READY=1\nSTATUS=forwarding; " + version.String()); err != nil {
			log.Warn("cannot tell systemd uplinkd is ready", "err", err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// SIGHUP reloads the configuration file (as `uplinkctl reload` does).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for {
			select {
			case <-hup:
				if _, err := d.Reload(); err != nil {
					log.Error("reload on SIGHUP", "err", err)
				}
			case <-ctx.Done():
				// Stopping starts now: the data plane stays, the daemon
				// winds down.
				_, _ = sdnotify.Notify("STOPPING=1")
				return
			}
		}
	}()
	err = d.Run(ctx)
	if err != nil {
		fatal("run", err)
	}
}

// uplinkAddresses lists the IP addresses on each uplink that exists here,
// IPv6 link-local ones left out (every interface has one).
func uplinkAddresses(cfg *config.Config) map[string][]string {
	out := map[string][]string{}
	for _, g := range cfg.Groups {
		for _, u := range g.Uplinks {
			link, err := netlink.LinkByName(u.Name)
			if err != nil {
				continue // not there (yet): nothing to warn about
			}
			// A dump interrupted on every try is a recent view: a warning
			// from it beats none.
			addrs, err := nldump.Retry(func() ([]netlink.Addr, error) { return netlink.AddrList(link, netlink.FAMILY_ALL) })
			if err != nil && !nldump.Interrupted(err) {
				continue
			}
			for _, a := range addrs {
				if a.IP.To4() != nil || !a.IP.IsLinkLocalUnicast() {
					out[u.Name] = append(out[u.Name], a.IPNet.String())
				}
			}
		}
	}
	return out
}

func fatal(what string, err error) {
	fmt.Fprintf(os.Stderr, "uplinkd: %s: %v\n", what, err)
	os.Exit(1)
}
