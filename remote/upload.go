package remote

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/pkg/sftp"
)

// FileSHA256 hashes a local file.
func FileSHA256(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// RemoteSHA256 hashes a file on the VM; "" when it does not exist.
func (c *Client) RemoteSHA256(ctx context.Context, p string, root bool) (string, error) {
	out, err := c.Exec(ctx, Cmd{Line: "if [ -f " + Quote(p) + " ]; then sha256sum " + Quote(p) + "; fi", Root: root})
	if err != nil {
		return "", err
	}
	sum, _, _ := strings.Cut(strings.TrimSpace(out), " ")
	return sum, nil
}

// Upload copies a local file to remotePath (in a directory the login user may
// write, such as TempDir's) as remotePath.part, checks its SHA-256 against the
// local file and renames it into place: a broken upload never looks finished.
// progress, when set, hears bytes written of the total. A dropped connection is
// redialed and the upload retried, up to three times.
func (c *Client) Upload(ctx context.Context, local, remotePath string, progress func(done, total int64)) error {
	sum, size, err := FileSHA256(local)
	if err != nil {
		return err
	}
	if have, err := c.RemoteSHA256(ctx, remotePath, false); err == nil && have == sum {
		if progress != nil {
			progress(size, size)
		}
		return nil
	}
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		if attempt > 0 {
			if err := c.Reconnect(ctx); err != nil {
				return fmt.Errorf("uploading %s: %w (reconnecting after: %v)", path.Base(local), err, last)
			}
		}
		last = c.uploadOnce(ctx, local, remotePath, size, progress)
		if last == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var mismatch *checksumError
		if errors.As(last, &mismatch) {
			continue
		}
	}
	if last != nil {
		return fmt.Errorf("uploading %s: %w", path.Base(local), last)
	}
	have, err := c.RemoteSHA256(ctx, remotePath+".part", false)
	if err != nil {
		return err
	}
	if have != sum {
		return &checksumError{file: remotePath, want: sum, have: have}
	}
	_, err = c.Run(ctx, "mv -f "+Quote(remotePath+".part")+" "+Quote(remotePath))
	return err
}

type checksumError struct{ file, want, have string }

func (e *checksumError) Error() string {
	return fmt.Sprintf("%s arrived with SHA-256 %s, not %s", e.file, e.have, e.want)
}

func (c *Client) uploadOnce(ctx context.Context, local, remotePath string, size int64, progress func(done, total int64)) error {
	sc, err := sftp.NewClient(c.ssh, sftp.UseConcurrentWrites(true), sftp.MaxConcurrentRequestsPerFile(64))
	if err != nil {
		return fmt.Errorf("starting sftp: %w", err)
	}
	defer sc.Close()
	// Cancelling closes the client, which ends a copy in progress.
	stop := context.AfterFunc(ctx, func() { sc.Close() })
	defer stop()
	src, err := os.Open(local)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := sc.OpenFile(remotePath+".part", os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return fmt.Errorf("creating %s.part: %w", remotePath, err)
	}
	if err := dst.Chmod(0o600); err != nil {
		dst.Close()
		return err
	}
	var r io.Reader = src
	if progress != nil {
		r = &progressReader{r: src, total: size, report: progress}
	}
	if _, err := dst.ReadFrom(r); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

type progressReader struct {
	r      io.Reader
	done   int64
	total  int64
	report func(done, total int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	p.report(p.done, p.total)
	return n, err
}

// Reconnect replaces a broken connection with a new one to the same VM, keeping
// how root is reached.
func (c *Client) Reconnect(ctx context.Context) error {
	fresh, err := Dial(ctx, c.opts)
	if err != nil {
		return err
	}
	c.Close()
	c.ssh, c.chain = fresh.ssh, fresh.chain
	return c.retakeDir(ctx)
}
