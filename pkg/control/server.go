package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Backend is what the daemon offers the API.
type Backend interface {
	Status() Status
	Guests() ([]Guest, error)
	Counters() ([]PortCounters, error)
	SetActive(group, uplink string) error
	ClearManual(group string) error
	SetUplink(group, uplink string, req SetUplinkRequest) error
	AddUplink(group string, req AddUplinkRequest) error
	RemoveUplink(group, uplink string) error
	AddPort(group, port string) error
	RemovePort(group, port string) error
	MoveGuest(group string, req MoveGuestRequest) error
	Reload() ([]string, error)
	Events(ctx context.Context, since uint64, wait time.Duration) ([]FailoverEvent, uint64)
}

// ErrNotFound marks an unknown group or uplink (HTTP 404).
var ErrNotFound = errors.New("not found")

// ErrRefused marks a request the daemon will not carry out (HTTP 409).
var ErrRefused = errors.New("refused")

// maxEventWait bounds a follower's long poll.
const maxEventWait = time.Minute

// Server serves the API on a unix socket.
type Server struct {
	path string
	ln   net.Listener
	http *http.Server
	log  *slog.Logger
}

// Listen creates the socket: its directory 0700 and the socket 0600, both
// root's, and every connection's peer must be root as well.
func Listen(path string, b Backend, log *slog.Logger) (*Server, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("control socket directory: %w", err)
	}
	// A stale socket from a daemon that died; a live one is refused below.
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s: another uplinkd is listening", path)
	}
	_ = os.Remove(path)
	old := unix.Umask(0o177)
	ln, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	s := &Server{path: path, ln: ln, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		reply(w, b.Status(), nil)
	})
	mux.HandleFunc("GET /v1/guests", func(w http.ResponseWriter, r *http.Request) {
		g, err := b.Guests()
		reply(w, g, err)
	})
	mux.HandleFunc("GET /v1/counters", func(w http.ResponseWriter, r *http.Request) {
		c, err := b.Counters()
		reply(w, c, err)
	})
	mux.HandleFunc("POST /v1/groups/{group}/active", func(w http.ResponseWriter, r *http.Request) {
		var req SetActiveRequest
		if !decodeBody(w, r, &req) {
			return
		}
		group := r.PathValue("group")
		var err error
		switch {
		case req.Auto && req.Uplink != "":
			err = fmt.Errorf("%w: give an uplink or auto, not both", ErrRefused)
		case req.Auto:
			err = b.ClearManual(group)
		case req.Uplink == "":
			err = fmt.Errorf("%w: no uplink given", ErrRefused)
		default:
			err = b.SetActive(group, req.Uplink)
		}
		reply(w, b.Status(), err)
	})
	mux.HandleFunc("POST /v1/groups/{group}/uplinks", func(w http.ResponseWriter, r *http.Request) {
		var req AddUplinkRequest
		if decodeBody(w, r, &req) {
			err := b.AddUplink(r.PathValue("group"), req)
			reply(w, b.Status(), err)
		}
	})
	mux.HandleFunc("DELETE /v1/groups/{group}/uplinks/{uplink}", func(w http.ResponseWriter, r *http.Request) {
		err := b.RemoveUplink(r.PathValue("group"), r.PathValue("uplink"))
		reply(w, b.Status(), err)
	})
	mux.HandleFunc("POST /v1/groups/{group}/ports", func(w http.ResponseWriter, r *http.Request) {
		var req AddPortRequest
		if decodeBody(w, r, &req) {
			err := b.AddPort(r.PathValue("group"), req.Name)
			reply(w, b.Status(), err)
		}
	})
	mux.HandleFunc("DELETE /v1/groups/{group}/ports/{port}", func(w http.ResponseWriter, r *http.Request) {
		err := b.RemovePort(r.PathValue("group"), r.PathValue("port"))
		reply(w, b.Status(), err)
	})
	mux.HandleFunc("POST /v1/reload", func(w http.ResponseWriter, r *http.Request) {
		changes, err := b.Reload()
		reply(w, ReloadResult{Changes: changes}, err)
	})
	mux.HandleFunc("GET /v1/events", func(w http.ResponseWriter, r *http.Request) {
		since, _ := strconv.ParseUint(r.URL.Query().Get("since"), 10, 64)
		wait, _ := time.ParseDuration(r.URL.Query().Get("wait"))
		evs, version := b.Events(r.Context(), since, min(wait, maxEventWait))
		reply(w, Events{Events: evs, Version: version}, nil)
	})
	mux.HandleFunc("POST /v1/groups/{group}/guests/move", func(w http.ResponseWriter, r *http.Request) {
		var req MoveGuestRequest
		if decodeBody(w, r, &req) {
			err := b.MoveGuest(r.PathValue("group"), req)
			reply(w, b.Status(), err)
		}
	})
	mux.HandleFunc("POST /v1/groups/{group}/uplinks/{uplink}", func(w http.ResponseWriter, r *http.Request) {
		var req SetUplinkRequest
		if !decodeBody(w, r, &req) {
			return
		}
		var err error
		if req.Priority == nil && req.State == "" {
			err = fmt.Errorf("%w: give a priority or a state", ErrRefused)
		} else {
			err = b.SetUplink(r.PathValue("group"), r.PathValue("uplink"), req)
		}
		reply(w, b.Status(), err)
	})
	s.http = &http.Server{
		Handler:           rootOnly(mux),
		ReadHeaderTimeout: 5 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, peerKey{}, peerUID(c))
		},
	}
	return s, nil
}

// Serve answers until Close.
func (s *Server) Serve() error {
	err := s.http.Serve(s.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops serving and removes the socket.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.http.Shutdown(ctx)
	_ = os.Remove(s.path)
	return err
}

type peerKey struct{}

// peerUID reads the connecting process's uid (SO_PEERCRED); -1 if unknown.
func peerUID(c net.Conn) int {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return -1
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return -1
	}
	uid := -1
	_ = raw.Control(func(fd uintptr) {
		cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if err == nil {
			uid = int(cred.Uid)
		}
	})
	return uid
}

// rootOnly refuses every caller but root, even if the socket's mode was
// loosened by hand: switching uplinks is a root operation.
func rootOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if uid, _ := r.Context().Value(peerKey{}).(int); uid != 0 {
			writeError(w, http.StatusForbidden, fmt.Errorf("uplinkd control socket: only root may connect (peer uid %d)", uid))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// decodeBody reads a small JSON request strictly; on error it answers 400
// and returns false.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("request body: %w", err))
		return false
	}
	return true
}

func reply(w http.ResponseWriter, v any, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, err)
	case errors.Is(err, ErrRefused):
		writeError(w, http.StatusConflict, err)
	case err != nil:
		writeError(w, http.StatusInternalServerError, err)
	default:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
}

func writeError(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(Error{Error: err.Error()})
}
