// Command go-client runs one opencode-server session the way a Go backend would: it creates the
// session, streams its events (resuming with Last-Event-ID when the connection drops), polls its
// status alongside, optionally cancels it, and prints the final status.
//
//	go run . --url http://localhost:3003 --secret "$OPENCODE_SHARED_SECRET" \
//	  --endpoint http://localhost:11434/v1 --model qwen2.5-coder --prompt "Add a README"
//
// Exit status: 0 when the session completed (or was cancelled by --cancel-after), 1 otherwise.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"opencode-server.example/go-client/opencode"
)

func main() {
	os.Exit(run())
}

func run() int {
	url := flag.String("url", "http://localhost:3003", "the sidecar's base URL")
	secret := flag.String("secret", os.Getenv("OPENCODE_SHARED_SECRET"), "bearer secret (default $OPENCODE_SHARED_SECRET)")
	endpoint := flag.String("endpoint", "", "the model's API endpoint (api_endpoint), e.g. http://localhost:11434/v1")
	provider := flag.String("provider", "openai-compatible", "openai, anthropic, google or openai-compatible")
	model := flag.String("model", "gpt-4o-mini", "model id")
	apiKey := flag.String("api-key", os.Getenv("MODEL_API_KEY"), "the provider's API key (default $MODEL_API_KEY)")
	prompt := flag.String("prompt", "Summarise this repository in README.md", "the task")
	systemPrompt := flag.String("system-prompt", "", "extra instructions for this session")
	tools := flag.String("tools", "read,write,edit,bash,glob,grep,list", "comma-separated enabled tools")
	temperature := flag.Float64("temperature", 0.2, "sampling temperature (0-2)")
	maxTokens := flag.Int("max-tokens", 4096, "max output tokens")
	sessionID := flag.String("session-id", "", "session id (default: a random UUID)")
	lastEventID := flag.String("last-event-id", "", "attach to an existing --session-id after this event id instead of creating one")
	attach := flag.Bool("attach", false, "stream an existing --session-id instead of creating one")
	poll := flag.Duration("poll", 2*time.Second, "status polling interval")
	cancelAfter := flag.Duration("cancel-after", 0, "cancel the session after this long (0: never)")
	dropAfter := flag.Int("drop-after", 0, "close each stream connection after N events, to exercise Last-Event-ID reconnection")
	timeout := flag.Duration("timeout", time.Hour, "give up after this long")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancelTimeout := context.WithTimeout(ctx, *timeout)
	defer cancelTimeout()

	client := opencode.New(*url, *secret)
	id := *sessionID
	if *attach || *lastEventID != "" {
		if id == "" {
			return fail(errors.New("--attach and --last-event-id need --session-id"))
		}
	} else {
		if id == "" {
			id = opencode.NewSessionID()
		}
		created, err := client.CreateSession(ctx, opencode.CreateSessionRequest{
			SessionID:    id,
			Prompt:       *prompt,
			SystemPrompt: *systemPrompt,
			ModelConfig: opencode.ModelConfig{
				Provider:     *provider,
				Model:        *model,
				APIKey:       *apiKey,
				Temperature:  *temperature,
				MaxTokens:    *maxTokens,
				EnabledTools: splitList(*tools),
				APIEndpoint:  *endpoint,
			},
		})
		if err != nil {
			return fail(fmt.Errorf("create session: %w", err))
		}
		fmt.Printf("created session %s (%s)\n", created.SessionID, created.Status)
	}

	// Poll the status beside the stream, as a backend's job tracker would.
	pollCtx, stopPolling := context.WithCancel(ctx)
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		_, _ = client.WaitStatus(pollCtx, id, *poll, func(s *opencode.SessionStatus) {
			fmt.Fprintf(os.Stderr, "status: %s %d%%\n", s.Status, s.Progress)
		})
	}()

	// The cancel runs on a timer beside the stream. The stream can see the
	// terminal event before the DELETE's answer is read, so once the timer
	// has fired the program waits for the cancel to finish before it exits.
	waitCancel := func() {}
	if *cancelAfter > 0 {
		cancelDone := make(chan struct{})
		timer := time.AfterFunc(*cancelAfter, func() {
			defer close(cancelDone)
			result, err := client.Cancel(ctx, id)
			if err != nil {
				fmt.Fprintf(os.Stderr, "cancel: %v\n", err)
				return
			}
			fmt.Printf("cancelled at %s\n", result.CancelledAt.Format(time.RFC3339Nano))
		})
		waitCancel = func() {
			if !timer.Stop() {
				<-cancelDone
			}
		}
	}

	events := 0
	err := client.Stream(ctx, id, opencode.StreamOptions{LastEventID: *lastEventID, DropAfter: *dropAfter}, func(ev opencode.Event) error {
		events++
		fmt.Printf("event %s %s %s\n", ev.ID, ev.Type, ev.Data)
		return nil
	})
	stopPolling()
	<-polled
	waitCancel()
	if err != nil {
		return fail(fmt.Errorf("stream: %w", err))
	}

	final, err := client.Status(context.Background(), id)
	if err != nil {
		return fail(fmt.Errorf("status: %w", err))
	}
	encoded, _ := json.Marshal(final)
	fmt.Printf("final status %s\n", encoded)
	fmt.Printf("%d events; session %s\n", events, final.Status)
	if final.Status == "completed" || (final.Status == "cancelled" && *cancelAfter > 0) {
		return 0
	}
	return 1
}

func splitList(list string) []string {
	out := []string{}
	for _, item := range strings.Split(list, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func fail(err error) int {
	fmt.Fprintln(os.Stderr, "go-client:", err)
	return 1
}
