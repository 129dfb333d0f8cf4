// Package opencode is a small client for opencode-server's REST + SSE API, using only the
// standard library: create a session, stream its events (reconnecting with Last-Event-ID),
// poll its status, cancel it.
package opencode

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Client talks to one sidecar.
type Client struct {
	// BaseURL is the sidecar's address, e.g. "http://localhost:3003".
	BaseURL string
	// Secret is OPENCODE_SHARED_SECRET; empty when the sidecar has no auth.
	Secret string
	// HTTP is used for every request; it must not set a Timeout, which would cut streams.
	HTTP *http.Client
	// MaxReconnects bounds consecutive stream reconnections that receive no new event.
	MaxReconnects int
}

// New returns a client with sensible defaults.
func New(baseURL, secret string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Secret: secret, HTTP: &http.Client{}, MaxReconnects: 10}
}

// ModelConfig is the model_config of a create request.
type ModelConfig struct {
	Provider     string   `json:"provider"`
	Model        string   `json:"model"`
	APIKey       string   `json:"api_key"`
	Temperature  float64  `json:"temperature"`
	MaxTokens    int      `json:"max_tokens"`
	EnabledTools []string `json:"enabled_tools"`
	ModelVersion string   `json:"model_version,omitempty"`
	APIEndpoint  string   `json:"api_endpoint,omitempty"`
}

// CreateSessionRequest is the body of POST /sessions.
type CreateSessionRequest struct {
	SessionID    string      `json:"session_id"`
	Prompt       string      `json:"prompt"`
	ModelConfig  ModelConfig `json:"model_config"`
	SystemPrompt string      `json:"system_prompt,omitempty"`
}

// ErrorInfo is a session's error ({"code","message"}).
type ErrorInfo struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// ModelRef names a session's provider and model.
type ModelRef struct {
	Provider string `json:"provider"`
	Model    string `json:"model"`
}

// SessionStatus is the body of POST /sessions (201) and GET /sessions/{id}/status.
type SessionStatus struct {
	SessionID     string     `json:"session_id"`
	Status        string     `json:"status"`
	Progress      int        `json:"progress"`
	CreatedAt     time.Time  `json:"created_at"`
	StartedAt     *time.Time `json:"started_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
	FinishedAt    *time.Time `json:"finished_at"`
	CancelledAt   *time.Time `json:"cancelled_at"`
	Model         ModelRef   `json:"model"`
	LastEventID   int        `json:"last_event_id"`
	FinalMessage  *string    `json:"final_message"`
	FilesModified []string   `json:"files_modified"`
	Error         *ErrorInfo `json:"error"`
	Usage         struct {
		InputTokens  int `json:"input_tokens"`
		OutputTokens int `json:"output_tokens"`
	} `json:"usage"`
	StreamURL string `json:"stream_url"`
}

// Ended reports whether the session is in a terminal state.
func (s *SessionStatus) Ended() bool {
	return s.Status == "completed" || s.Status == "failed" || s.Status == "cancelled"
}

// CancelResult is the body of DELETE /sessions/{id}.
type CancelResult struct {
	SessionID   string    `json:"session_id"`
	Status      string    `json:"status"`
	CancelledAt time.Time `json:"cancelled_at"`
}

// APIError is any non-2xx answer: the contract's error body plus the HTTP status.
type APIError struct {
	StatusCode int
	Message    string                 `json:"error"`
	Details    map[string]interface{} `json:"details"`
	// RetryAfter is the Retry-After header (503 at capacity or not ready).
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	if e.Details != nil {
		return fmt.Sprintf("HTTP %d: %s %v", e.StatusCode, e.Message, e.Details)
	}
	return fmt.Sprintf("HTTP %d: %s", e.StatusCode, e.Message)
}

// NewSessionID returns a random (version 4) UUID.
func NewSessionID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func (c *Client) request(ctx context.Context, method, path string, body interface{}) (*http.Request, error) {
	var reader io.Reader
	if body != nil {
		encoded, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		reader = bytes.NewReader(encoded)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, reader)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Secret != "" {
		req.Header.Set("Authorization", "Bearer "+c.Secret)
	}
	return req, nil
}

func (c *Client) do(ctx context.Context, method, path string, body interface{}, want int, out interface{}) error {
	req, err := c.request(ctx, method, path, body)
	if err != nil {
		return err
	}
	res, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != want {
		return readAPIError(res)
	}
	return json.NewDecoder(res.Body).Decode(out)
}

func readAPIError(res *http.Response) error {
	apiErr := &APIError{StatusCode: res.StatusCode}
	raw, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if json.Unmarshal(raw, apiErr) != nil || apiErr.Message == "" {
		apiErr.Message = strings.TrimSpace(string(raw))
	}
	if seconds, err := strconv.Atoi(res.Header.Get("Retry-After")); err == nil {
		apiErr.RetryAfter = time.Duration(seconds) * time.Second
	}
	return apiErr
}

// CreateSession starts a session (POST /sessions, 201).
func (c *Client) CreateSession(ctx context.Context, req CreateSessionRequest) (*SessionStatus, error) {
	var status SessionStatus
	return &status, c.do(ctx, http.MethodPost, "/sessions", req, http.StatusCreated, &status)
}

// Status returns the session's status (GET /sessions/{id}/status).
func (c *Client) Status(ctx context.Context, sessionID string) (*SessionStatus, error) {
	var status SessionStatus
	return &status, c.do(ctx, http.MethodGet, "/sessions/"+sessionID+"/status", nil, http.StatusOK, &status)
}

// Cancel cancels the session (DELETE /sessions/{id}); repeating it returns the same result.
// A session that already completed or failed answers with an *APIError of status 409.
func (c *Client) Cancel(ctx context.Context, sessionID string) (*CancelResult, error) {
	var result CancelResult
	return &result, c.do(ctx, http.MethodDelete, "/sessions/"+sessionID, nil, http.StatusOK, &result)
}

// IsTerminal reports whether ev is the session's last event: `complete`, a fatal `error`, or a
// `status` of `cancelled`. The server closes the stream after it.
func IsTerminal(ev Event) bool {
	switch ev.Type {
	case "complete":
		return true
	case "error":
		var payload struct{ Fatal bool }
		return json.Unmarshal(ev.Data, &payload) == nil && payload.Fatal
	case "status":
		var payload struct{ Status string }
		return json.Unmarshal(ev.Data, &payload) == nil && payload.Status == "cancelled"
	}
	return false
}

// ErrStreamDropped is what StreamOptions.DropAfter returns to force a reconnection.
var ErrStreamDropped = errors.New("stream dropped by the client")

// StreamOptions tune Stream.
type StreamOptions struct {
	// LastEventID resumes after this event id ("" replays the whole session).
	LastEventID string
	// DropAfter, when > 0, closes each connection after that many events: it exercises the
	// Last-Event-ID reconnection path (the events still arrive once each, in order).
	DropAfter int
	// Heartbeats are passed to the handler too when true.
	Heartbeats bool
}

// Stream follows the session's events until its terminal event, calling handle for each one.
// When the connection ends early (network error, proxy timeout, a server restart), it waits the
// server's `retry:` delay and reconnects with Last-Event-ID, so each event is seen exactly once.
// It returns nil after the terminal event, the handler's error, ctx's error, or an *APIError for
// answers that retrying cannot fix (400, 401, 404, 406).
func (c *Client) Stream(ctx context.Context, sessionID string, opts StreamOptions, handle func(Event) error) error {
	lastID := opts.LastEventID
	retry := time.Second
	failures := 0
	for {
		progressed, done, err := c.streamOnce(ctx, sessionID, &lastID, &retry, opts, handle)
		if done || ctx.Err() != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		var apiErr *APIError
		if errors.As(err, &apiErr) && apiErr.StatusCode < 500 && apiErr.StatusCode != http.StatusTooManyRequests {
			return err
		}
		if progressed {
			failures = 0
		} else if failures++; failures > c.MaxReconnects {
			return fmt.Errorf("stream: giving up after %d reconnections: %w", c.MaxReconnects, err)
		}
		wait := retry
		if apiErr != nil && apiErr.RetryAfter > wait {
			wait = apiErr.RetryAfter
		}
		if errors.Is(err, ErrStreamDropped) {
			wait = 0
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// streamOnce reads one connection. progressed: at least one event arrived; done: the terminal
// event arrived or the handler failed.
func (c *Client) streamOnce(ctx context.Context, sessionID string, lastID *string, retry *time.Duration, opts StreamOptions, handle func(Event) error) (progressed, done bool, err error) {
	connCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := c.request(connCtx, http.MethodGet, "/sessions/"+sessionID+"/stream", nil)
	if err != nil {
		return false, true, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if *lastID != "" {
		req.Header.Set("Last-Event-ID", *lastID)
	}
	res, err := c.HTTP.Do(req)
	if err != nil {
		return false, false, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return false, false, readAPIError(res)
	}
	reader := newSSEReader(res.Body)
	count := 0
	for {
		ev, err := reader.Next()
		if reader.retryMillis >= 0 {
			*retry = time.Duration(reader.retryMillis) * time.Millisecond
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF // the server closes only after the terminal event
			}
			return progressed, false, err
		}
		if ev.Type == "heartbeat" {
			if opts.Heartbeats {
				if err := handle(ev); err != nil {
					return progressed, true, err
				}
			}
			continue
		}
		*lastID = ev.ID
		progressed = true
		if err := handle(ev); err != nil {
			return progressed, true, err
		}
		if IsTerminal(ev) {
			return progressed, true, nil
		}
		if count++; opts.DropAfter > 0 && count >= opts.DropAfter {
			return progressed, false, ErrStreamDropped
		}
	}
}

// WaitStatus polls the status every interval, calling onChange when status or progress change,
// until the session ends or ctx is done.
func (c *Client) WaitStatus(ctx context.Context, sessionID string, interval time.Duration, onChange func(*SessionStatus)) (*SessionStatus, error) {
	var last *SessionStatus
	for {
		status, err := c.Status(ctx, sessionID)
		if err != nil {
			return last, err
		}
		if last == nil || status.Status != last.Status || status.Progress != last.Progress {
			onChange(status)
		}
		last = status
		if status.Ended() {
			return status, nil
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(interval):
		}
	}
}
