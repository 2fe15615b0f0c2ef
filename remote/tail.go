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

// TailFile is a file to follow from a byte offset (0: its beginning).
type TailFile struct {
	Path   string
	Offset int64
}

// Line is one line of a followed file.
type Line struct {
	File string
	Text string
}

// Tail follows files on the VM as user as (root when empty) and hands each new
// line, cleaned of escape sequences, to onLine until onLine says stop, ctx ends
// or max passes (then it returns nil: the caller decides what silence means).
// Files in a directory a less-privileged user owns are to be followed as that
// user: as root, a link planted there would show root's files. The remote side
// runs under `timeout`, which ends its whole process group, so nothing keeps
// running on the VM if the connection is lost.
func (c *Client) Tail(parent context.Context, as string, files []TailFile, max time.Duration, onLine func(Line) (stop bool)) error {
	ctx, cancel := context.WithTimeout(parent, max+10*time.Second)
	defer cancel()
	secs := int(max / time.Second)
	if secs < 1 {
		secs = 1
	}
	var parts []string
	for _, f := range files {
		// GNU sed -u: unbuffered, so each line arrives when it is written.
		parts = append(parts, fmt.Sprintf("tail -s 0.2 -c +%d -F %s 2>/dev/null | sed -u %s &",
			f.Offset+1, Quote(f.Path), Quote("s|^|"+strings.ReplaceAll(f.Path, "|", `\|`)+"\t|")))
	}
	line := fmt.Sprintf("exec timeout %d sh -c %s", secs, Quote(strings.Join(parts, " ")+" wait"))
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := c.Exec(ctx, Cmd{Line: line, Root: true, As: as, Stdout: pw, Stderr: io.Discard})
		pw.CloseWithError(err)
		done <- err
	}()
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	stopped := false
	for sc.Scan() {
		file, text, _ := strings.Cut(sc.Text(), "\t")
		if onLine(Line{File: file, Text: CleanText(text)}) {
			stopped = true
			break
		}
	}
	// Whether the wait ran out, before our own cancel makes it look so.
	ranOut := ctx.Err() != nil
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
	if err != nil && (ranOut || (errors.As(err, &exit) && exit.Code == 124)) {
		return nil
	}
	// Anything else, a lost connection included, is the caller's to see.
	return err
}
