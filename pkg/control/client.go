package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"
)

// Client talks to a running uplinkd.
type Client struct {
	path string
	http *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	return &Client{
		path: path,
		http: &http.Client{
			Timeout: 10 * time.Second,
			Transport: &http.Transport{
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, "unix", path)
				},
			},
		},
	}
}

// Status fetches the switch's status.
func (c *Client) Status() (Status, error) {
	var s Status
	return s, c.do(http.MethodGet, "/v1/status", nil, &s)
}

// Guests fetches the learned guests.
func (c *Client) Guests() ([]Guest, error) {
	var g []Guest
	return g, c.do(http.MethodGet, "/v1/guests", nil, &g)
}

// Counters fetches per-port counters.
func (c *Client) Counters() ([]PortCounters, error) {
	var pc []PortCounters
	return pc, c.do(http.MethodGet, "/v1/counters", nil, &pc)
}

// SetActive switches group to uplink and pins it there.
func (c *Client) SetActive(group, uplink string) (Status, error) {
	var s Status
	return s, c.do(http.MethodPost, "/v1/groups/"+url.PathEscape(group)+"/active", SetActiveRequest{Uplink: uplink}, &s)
}

// ClearManual returns group to automatic uplink selection.
func (c *Client) ClearManual(group string) (Status, error) {
	var s Status
	return s, c.do(http.MethodPost, "/v1/groups/"+url.PathEscape(group)+"/active", SetActiveRequest{Auto: true}, &s)
}

// SetUplink changes an uplink's priority and/or admin state.
func (c *Client) SetUplink(group, uplink string, req SetUplinkRequest) (Status, error) {
	var s Status
	return s, c.do(http.MethodPost, "/v1/groups/"+url.PathEscape(group)+"/uplinks/"+url.PathEscape(uplink), req, &s)
}

// AddUplink adds an uplink to group.
func (c *Client) AddUplink(group string, req AddUplinkRequest) (Status, error) {
	var s Status
	return s, c.do(http.MethodPost, "/v1/groups/"+url.PathEscape(group)+"/uplinks", req, &s)
}

// RemoveUplink removes an uplink from group.
func (c *Client) RemoveUplink(group, uplink string) (Status, error) {
	var s Status
	return s, c.do(http.MethodDelete, "/v1/groups/"+url.PathEscape(group)+"/uplinks/"+url.PathEscape(uplink), nil, &s)
}

// AddPort adds a guest port to group.
func (c *Client) AddPort(group, port string) (Status, error) {
	var s Status
	return s, c.do(http.MethodPost, "/v1/groups/"+url.PathEscape(group)+"/ports", AddPortRequest{Name: port}, &s)
}

// RemovePort removes a guest port from group.
func (c *Client) RemovePort(group, port string) (Status, error) {
	var s Status
	return s, c.do(http.MethodDelete, "/v1/groups/"+url.PathEscape(group)+"/ports/"+url.PathEscape(port), nil, &s)
}

// MoveGuest pins a guest of a balance group to an uplink.
func (c *Client) MoveGuest(group string, req MoveGuestRequest) (Status, error) {
	var s Status
	return s, c.do(http.MethodPost, "/v1/groups/"+url.PathEscape(group)+"/guests/move", req, &s)
}

// Reload makes the daemon reload its configuration file.
func (c *Client) Reload() (ReloadResult, error) {
	var r ReloadResult
	return r, c.do(http.MethodPost, "/v1/reload", nil, &r)
}

// Events asks for the failover timeline's changes after version since;
// with wait > 0 (at most 5 s, well inside the client's 10 s timeout) the
// daemon holds the answer until something changes.
func (c *Client) Events(since uint64, wait time.Duration) (Events, error) {
	var e Events
	return e, c.do(http.MethodGet, fmt.Sprintf("/v1/events?since=%d&wait=%s", since, min(wait, 5*time.Second)), nil, &e)
}

func (c *Client) do(method, path string, body, out any) error {
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, "http://uplinkd"+path, rd)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ne *net.OpError
		if errors.As(err, &ne) {
			return fmt.Errorf("cannot reach uplinkd at %s (is it running? are you root?): %w", c.path, ne.Err)
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var e Error
		if json.NewDecoder(resp.Body).Decode(&e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("uplinkd answered %s", resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
