package remote

import (
	"bytes"
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
	// Only a file this connection uploaded can already be there: the private
	// directory is the connection's own (a reconnect takes it over, records and
	// all). Without such a record, asking the VM would cost a session for nothing.
	if c.uploadedAs(remotePath) == sum {
		if have, err := c.RemoteSHA256(ctx, remotePath, false); err == nil && have == sum {
			if progress != nil {
				progress(size, size)
			}
			return nil
		}
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
	// Checked and renamed in one session: the rename happens only on the VM's
	// word that the SHA-256 matches, and the SHA-256 it read is reported.
	have, err := c.checkAndRename(ctx, remotePath, sum)
	if err != nil {
		return err
	}
	if have != sum {
		return &checksumError{file: remotePath, want: sum, have: have}
	}
	c.recordUpload(remotePath, sum)
	return nil
}

// checkAndRename hashes remotePath.part and, when its SHA-256 is want, renames
// it to remotePath; it returns the SHA-256 it found ("" for no file).
func (c *Client) checkAndRename(ctx context.Context, remotePath, want string) (string, error) {
	out, err := c.Run(ctx, renameIfScript(remotePath, want))
	if err != nil {
		return "", err
	}
	return parseRenamed(out), nil
}

// renameIfScript prints "sha256 SUM" for p.part and renames it to p when SUM
// is want.
func renameIfScript(p, want string) string {
	part := Quote(p + ".part")
	return fmt.Sprintf(`s=; if [ -f %[1]s ]; then s=$(sha256sum < %[1]s) || exit 1; s=${s%%%% *}; fi; echo "sha256 $s"; [ "$s" != %[2]s ] || mv -f %[1]s %[3]s`,
		part, Quote(want), Quote(p))
}

func parseRenamed(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if s, ok := strings.CutPrefix(l, "sha256 "); ok {
			return strings.TrimSpace(s)
		}
	}
	return ""
}

// recordUpload notes that remotePath holds the file with this SHA-256.
func (c *Client) recordUpload(remotePath, sum string) {
	c.dirMu.Lock()
	defer c.dirMu.Unlock()
	if c.uploaded == nil {
		c.uploaded = map[string]string{}
	}
	c.uploaded[remotePath] = sum
}

func (c *Client) uploadedAs(remotePath string) string {
	c.dirMu.Lock()
	defer c.dirMu.Unlock()
	return c.uploaded[remotePath]
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

// Transfer is a local file and where it goes on the VM.
type Transfer struct{ Local, Remote string }

// maxBatched is the largest file UploadFiles sends in its one session.
const maxBatched = 1 << 20

// UploadFiles copies small local files to their remote paths (in a directory
// the login user may write, such as TempDir's) in one session, not one SFTP
// session and three commands each: on the VM each arrives as path.part on
// stdin, its SHA-256 is checked and it is renamed to path only when it matches
// the local file's. One that does not arrive whole (or is large) is sent again
// by Upload, which retries.
func (c *Client) UploadFiles(ctx context.Context, files []Transfer) error {
	var script strings.Builder
	script.WriteString("umask 077\n" + `r() { head -c "$1" > "$2.part" || exit 1; s=$(sha256sum < "$2.part") || exit 1; s=${s%% *}; echo "sha256 $s"; [ "$s" != "$3" ] || mv -f "$2.part" "$2" || exit 1; }` + "\n")
	var stdin bytes.Buffer
	var batched, alone []Transfer
	var sums []string
	for _, f := range files {
		data, err := readSmall(f.Local)
		if err != nil {
			return err
		}
		if data == nil {
			alone = append(alone, f)
			continue
		}
		h := sha256.Sum256(data)
		sum := hex.EncodeToString(h[:])
		fmt.Fprintf(&script, "r %d %s %s\n", len(data), Quote(f.Remote), sum)
		stdin.Write(data)
		batched = append(batched, f)
		sums = append(sums, sum)
	}
	if len(batched) > 0 {
		out, err := c.Exec(ctx, Cmd{Line: script.String(), Stdin: &stdin, Display: fmt.Sprintf("uploading %d files to %s", len(batched), path.Dir(batched[0].Remote))})
		if err != nil {
			return fmt.Errorf("uploading %s: %w", path.Base(batched[0].Local), err)
		}
		var have []string
		for _, l := range strings.Split(out, "\n") {
			if s, ok := strings.CutPrefix(l, "sha256 "); ok {
				have = append(have, s)
			}
		}
		for i, f := range batched {
			if i < len(have) && have[i] == sums[i] {
				c.recordUpload(f.Remote, sums[i])
				continue
			}
			alone = append(alone, f)
		}
	}
	for _, f := range alone {
		if err := c.Upload(ctx, f.Local, f.Remote, nil); err != nil {
			return err
		}
	}
	return nil
}

// readSmall reads a regular file of at most maxBatched bytes; nil for a larger
// one.
func readSmall(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxBatched+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxBatched {
		return nil, nil
	}
	if data == nil {
		data = []byte{}
	}
	return data, nil
}
