package e2e

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/uplinkd/uplinkd/pkg/config"
)

// TestKubernetesManifests parses the DaemonSet and its ConfigMap (no
// cluster here) and checks what the fleet depends on: the configuration is
// valid uplinkd configuration, the pod is on the host's network with the
// systemd unit's capabilities and nothing more, the bpffs, configuration
// and socket mounts are there, and the metrics port is the one uplinkd
// listens on.
func TestKubernetesManifests(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/kubernetes/uplinkd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type container struct {
		Command []string `yaml:"command"`
		Ports   []struct {
			Name          string `yaml:"name"`
			ContainerPort int    `yaml:"containerPort"`
		} `yaml:"ports"`
		SecurityContext struct {
			Privileged   bool `yaml:"privileged"`
			Capabilities struct {
				Add  []string `yaml:"add"`
				Drop []string `yaml:"drop"`
			} `yaml:"capabilities"`
		} `yaml:"securityContext"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
		} `yaml:"volumeMounts"`
	}
	type doc struct {
		Kind string            `yaml:"kind"`
		Data map[string]string `yaml:"data"`
		Spec struct {
			Template struct {
				Spec struct {
					HostNetwork bool        `yaml:"hostNetwork"`
					Containers  []container `yaml:"containers"`
					Volumes     []struct {
						Name     string `yaml:"name"`
						HostPath struct {
							Path string `yaml:"path"`
						} `yaml:"hostPath"`
						ConfigMap struct {
							Name string `yaml:"name"`
						} `yaml:"configMap"`
					} `yaml:"volumes"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	docs := map[string]doc{}
	for {
		var d doc
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("manifest: %v", err)
		}
		docs[d.Kind] = d
	}
	cm, ds := docs["ConfigMap"], docs["DaemonSet"]
	cfg, err := config.Parse([]byte(cm.Data["uplinkd.yaml"]))
	if err != nil {
		t.Fatalf("the ConfigMap's configuration: %v", err)
	}
	pod := ds.Spec.Template.Spec
	if !pod.HostNetwork || len(pod.Containers) != 1 {
		t.Fatalf("pod: hostNetwork %t, %d containers", pod.HostNetwork, len(pod.Containers))
	}
	c := pod.Containers[0]
	var want []string
	for _, cap := range unitCapabilities(t) {
		want = append(want, strings.TrimPrefix(cap, "CAP_"))
	}
	if sc := c.SecurityContext; sc.Privileged || !slices.Equal(sc.Capabilities.Add, want) || !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) {
		t.Errorf("securityContext %+v, want unprivileged, drop ALL, add %v (the systemd unit's)", sc, want)
	}
	// Each mount is the host's own directory (the data plane and the
	// socket outlive the pod) or the ConfigMap.
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	volumes := map[string]string{} // name -> "host:<path>" or "configmap:<name>"
	for _, v := range pod.Volumes {
		switch {
		case v.HostPath.Path != "":
			volumes[v.Name] = "host:" + v.HostPath.Path
		case v.ConfigMap.Name != "":
			volumes[v.Name] = "configmap:" + v.ConfigMap.Name
		}
	}
	for path, want := range map[string]string{"/sys/fs/bpf": "host:/sys/fs/bpf", "/etc/uplinkd": "configmap:uplinkd", "/run/uplinkd": "host:/run/uplinkd"} {
		if got := volumes[mounts[path]]; got != want {
			t.Errorf("%s mounts volume %q (%s), want %s", path, mounts[path], got, want)
		}
	}
	if !strings.HasPrefix(cfg.PinPath, "/sys/fs/bpf/") || !strings.HasPrefix(cfg.ControlSocket, "/run/uplinkd/") || !slices.Contains(c.Command, "/etc/uplinkd/uplinkd.yaml") {
		t.Errorf("pin path %s, socket %s, command %v: not on the mounted volumes", cfg.PinPath, cfg.ControlSocket, c.Command)
	}
	_, port, _ := net.SplitHostPort(cfg.MetricsListen)
	if n, err := strconv.Atoi(port); err != nil || len(c.Ports) != 1 || c.Ports[0].Name != "metrics" || c.Ports[0].ContainerPort != n {
		t.Errorf("ports %+v, metrics_listen %q", c.Ports, cfg.MetricsListen)
	}
}
