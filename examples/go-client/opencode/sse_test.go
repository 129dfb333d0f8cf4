package opencode

import (
	"io"
	"strings"
	"testing"
)

func TestSSEReader(t *testing.T) {
	body := "retry: 1500\r\n\r\n: comment\nevent: output\nid: 1\ndata: {\"a\":1}\n\nevent: heartbeat\ndata: {}\n\r" +
		"event: status\rid: 2\rdata:x\rdata: y\r\rid: 3\n\nevent: cut\nid: 9\ndata: partial"
	r := newSSEReader(strings.NewReader(body))
	want := []Event{{"1", "output", []byte(`{"a":1}`)}, {"1", "heartbeat", []byte("{}")}, {"2", "status", []byte("x\ny")}}
	for _, w := range want {
		ev, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if ev.ID != w.ID || ev.Type != w.Type || string(ev.Data) != string(w.Data) {
			t.Fatalf("got %+v (%s), want %+v (%s)", ev, ev.Data, w, w.Data)
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("a cut-off event must not be dispatched, got err %v", err)
	}
	if r.retryMillis != 1500 || r.lastEventID != "9" {
		t.Fatalf("retry %d, last id %q", r.retryMillis, r.lastEventID)
	}
}
