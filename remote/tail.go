package remote

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Line is one line of a followed file.
type Line struct {
	File string
	Text string
}

// Tail follows files on the VM as root from their beginning and hands each line
// to onLine until onLine says stop, ctx ends or max passes. The remote tail runs
// under `timeout`, so it ends on the VM even if the connection is lost.
func (c *Client) Tail(parent context.Context, files []string, max time.Duration, onLine func(Line) (stop bool)) error {
	ctx, cancel := context.WithTimeout(parent, max+5*time.Second)
	defer cancel()
	quoted := make([]string, len(files))
	for i, f := range files {
		quoted[i] = Quote(f)
	}
	secs := int(max / time.Second)
	if secs < 1 {
		secs = 1
	}
	line := fmt.Sprintf("exec timeout %d tail -v -n +1 -F %s", secs, strings.Join(quoted, " "))
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := c.Exec(ctx, Cmd{Line: line, Root: true, Stdout: pw, Stderr: io.Discard})
		pw.CloseWithError(err)
		done <- err
	}()
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	current := ""
	if len(files) == 1 {
		current = files[0]
	}
	stopped := false
	for sc.Scan() {
		text := sc.Text()
		if strings.HasPrefix(text, "==> ") && strings.HasSuffix(text, " <==") {
			current = strings.TrimSuffix(strings.TrimPrefix(text, "==> "), " <==")
			continue
		}
		if text == "" {
			continue // tail separates its file headers with blank lines
		}
		if onLine(Line{File: current, Text: text}) {
			stopped = true
			break
		}
	}
	cancel()
	pr.Close()
	err := <-done
	switch {
	case stopped:
		return nil
	case parent.Err() != nil:
		return parent.Err()
	}
	var exit *ExitError
	if err != nil && (ctx.Err() != nil || (errors.As(err, &exit) && exit.Code == 124)) {
		return nil // max reached: the caller decides what silence means
	}
	return err
}
