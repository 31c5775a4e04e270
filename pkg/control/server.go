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

// Backend is what the daemon offers the API. Each call gets its request's
// context: the daemon may give up on a request whose client went away
// before it began (and then says so in the error).
type Backend interface {
	Status(ctx context.Context) (Status, error)
	Guests(ctx context.Context) ([]Guest, error)
	Counters(ctx context.Context) ([]PortCounters, error)
	SetActive(ctx context.Context, group, uplink string) error
	ClearManual(ctx context.Context, group string) error
	SetUplink(ctx context.Context, group, uplink string, req SetUplinkRequest) error
	AddUplink(ctx context.Context, group string, req AddUplinkRequest) error
	RemoveUplink(ctx context.Context, group, uplink string) error
	AddPort(ctx context.Context, group, port string) error
	RemovePort(ctx context.Context, group, port string) error
	MoveGuest(ctx context.Context, group string, req MoveGuestRequest) error
	Reload(ctx context.Context) ([]string, error)
	Events(ctx context.Context, since uint64, wait time.Duration) ([]FailoverEvent, uint64, error)
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
		st, err := b.Status(r.Context())
		reply(w, st, err)
	})
	mux.HandleFunc("GET /v1/guests", func(w http.ResponseWriter, r *http.Request) {
		g, err := b.Guests(r.Context())
		reply(w, g, err)
	})
	mux.HandleFunc("GET /v1/counters", func(w http.ResponseWriter, r *http.Request) {
		c, err := b.Counters(r.Context())
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
			err = b.ClearManual(r.Context(), group)
		case req.Uplink == "":
			err = fmt.Errorf("%w: no uplink given", ErrRefused)
		default:
			err = b.SetActive(r.Context(), group, req.Uplink)
		}
		replyStatus(w, r, b, err)
	})
	mux.HandleFunc("POST /v1/groups/{group}/uplinks", func(w http.ResponseWriter, r *http.Request) {
		var req AddUplinkRequest
		if decodeBody(w, r, &req) {
			err := b.AddUplink(r.Context(), r.PathValue("group"), req)
			replyStatus(w, r, b, err)
		}
	})
	mux.HandleFunc("DELETE /v1/groups/{group}/uplinks/{uplink}", func(w http.ResponseWriter, r *http.Request) {
		err := b.RemoveUplink(r.Context(), r.PathValue("group"), r.PathValue("uplink"))
		replyStatus(w, r, b, err)
	})
	mux.HandleFunc("POST /v1/groups/{group}/ports", func(w http.ResponseWriter, r *http.Request) {
		var req AddPortRequest
		if decodeBody(w, r, &req) {
			err := b.AddPort(r.Context(), r.PathValue("group"), req.Name)
			replyStatus(w, r, b, err)
		}
	})
	mux.HandleFunc("DELETE /v1/groups/{group}/ports/{port}", func(w http.ResponseWriter, r *http.Request) {
		err := b.RemovePort(r.Context(), r.PathValue("group"), r.PathValue("port"))
		replyStatus(w, r, b, err)
	})
	mux.HandleFunc("POST /v1/reload", func(w http.ResponseWriter, r *http.Request) {
		changes, err := b.Reload(r.Context())
		reply(w, ReloadResult{Changes: changes}, err)
	})
	mux.HandleFunc("GET /v1/events", func(w http.ResponseWriter, r *http.Request) {
		since, _ := strconv.ParseUint(r.URL.Query().Get("since"), 10, 64)
		wait, _ := time.ParseDuration(r.URL.Query().Get("wait"))
		evs, version, err := b.Events(r.Context(), since, min(wait, maxEventWait))
		reply(w, Events{Events: evs, Version: version}, err)
	})
	mux.HandleFunc("POST /v1/groups/{group}/guests/move", func(w http.ResponseWriter, r *http.Request) {
		var req MoveGuestRequest
		if decodeBody(w, r, &req) {
			err := b.MoveGuest(r.Context(), r.PathValue("group"), req)
			replyStatus(w, r, b, err)
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
			err = b.SetUplink(r.Context(), r.PathValue("group"), r.PathValue("uplink"), req)
		}
		replyStatus(w, r, b, err)
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

// replyStatus answers a change: its error, or the status after it.
func replyStatus(w http.ResponseWriter, r *http.Request, b Backend, err error) {
	if err != nil {
		reply(w, nil, err)
		return
	}
	st, err := b.Status(r.Context())
	reply(w, st, err)
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
