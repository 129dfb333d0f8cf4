package opencode

import (
	"bufio"
	"bytes"
	"io"
	"strconv"
	"strings"
)

// Event is one dispatched Server-Sent Event.
type Event struct {
	// ID is the event's `id:` (the stream's cursor); empty for heartbeats.
	ID string
	// Type is the `event:` field ("message" when absent).
	Type string
	// Data is the `data:` lines joined with "\n" (one JSON object in this API).
	Data []byte
}

// sseReader parses a text/event-stream body as the WHATWG spec says: lines end in CRLF, LF or
// CR; a line starting with ':' is a comment; "field: value" loses one leading space; data lines
// accumulate; a blank line dispatches; `id` persists as the last event id; `retry` sets the
// reconnection delay.
type sseReader struct {
	scanner     *bufio.Scanner
	lastEventID string
	retryMillis int
}

func newSSEReader(body io.Reader) *sseReader {
	scanner := bufio.NewScanner(body)
	scanner.Buffer(make([]byte, 64*1024), 32*1024*1024)
	scanner.Split(scanLines)
	return &sseReader{scanner: scanner, retryMillis: -1}
}

// scanLines splits on "\r\n", "\n" or a lone "\r".
func scanLines(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		if data[i] == '\r' {
			if i+1 == len(data) && !atEOF {
				return 0, nil, nil // a '\n' may follow in the next read
			}
			if i+1 < len(data) && data[i+1] == '\n' {
				return i + 2, data[:i], nil
			}
		}
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// Next returns the next event, or io.EOF (or the read error) when the body ends.
// An event cut off by the end of the body is never returned.
func (r *sseReader) Next() (Event, error) {
	var event Event
	var data bytes.Buffer
	hasData := false
	for r.scanner.Scan() {
		line := r.scanner.Text()
		if line == "" {
			if !hasData {
				event = Event{}
				continue
			}
			event.ID = r.lastEventID
			if event.Type == "" {
				event.Type = "message"
			}
			event.Data = data.Bytes()
			return event, nil
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value := line, ""
		if i := strings.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], strings.TrimPrefix(line[i+1:], " ")
		}
		switch field {
		case "event":
			event.Type = value
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			data.WriteString(value)
			hasData = true
		case "id":
			if !strings.ContainsRune(value, 0) {
				r.lastEventID = value
			}
		case "retry":
			if n, err := strconv.Atoi(value); err == nil && n >= 0 && strings.Trim(value, "0123456789") == "" {
				r.retryMillis = n
			}
		}
	}
	if err := r.scanner.Err(); err != nil {
		return Event{}, err
	}
	return Event{}, io.EOF
}
