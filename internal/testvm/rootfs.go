// Package testvm starts sandbox VMs for tests: a Debian root filesystem built once
// with debootstrap (cached), and per VM an overlayfs copy of it running OpenSSH's
// sshd as PID 1 in its own network, mount, pid and uts namespaces, reachable at an
// address on a veth pair inside a network namespace the test made. Nothing here
// touches the host's /etc. Root only.
package testvm

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/crypto/ssh"

	"github.com/vm2mesh/vm2mesh/internal/testcluster"
)

// Packages are what the VM image has beyond debootstrap's minbase.
var Packages = []string{"openssh-server", "sudo", "rpm", "iproute2", "iptables", "hostname", "systemd", "procps", "curl"}

// The users every VM has. Their passwords are test fixtures of a throwaway image.
const (
	UserNoPasswordSudo = "deploy" // sudo without a password
	UserPasswordSudo   = "admin"  // sudo asks for SudoPassword
	UserNoSudo         = "plain"  // no sudo rights at all
	SudoPassword       = "admin-sudo-pw"
	PlainPassword      = "plain-pw" // plain's own password: right, but plain may not sudo
)

// Image is the cached root filesystem and the client key its users accept.
type Image struct {
	Root      string // the debootstrapped tree (read-only lower layer)
	ClientKey string // private key (OpenSSH format) authorized for every user
}

// imageKey changes whenever what goes into the image changes.
func imageKey() string {
	h := sha256.Sum256([]byte("bookworm minbase v1 " + strings.Join(Packages, ",") + userSetup))
	return hex.EncodeToString(h[:6])
}

// userSetup runs in the image (chroot) once, after debootstrap.
const userSetup = `set -e
for u in deploy admin plain; do useradd -m -s /bin/bash "$u"; done
echo 'admin:admin-sudo-pw' | chpasswd
echo 'plain:plain-pw' | chpasswd
# "!" (useradd's default) is a locked account, which sshd refuses even for keys.
usermod -p '*' deploy
echo 'deploy ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/deploy
echo 'admin ALL=(ALL) ALL' > /etc/sudoers.d/admin
chmod 440 /etc/sudoers.d/deploy /etc/sudoers.d/admin
for home in /root /home/deploy /home/admin /home/plain; do
	mkdir -p "$home/.ssh"
	cp /tmp/vm2mesh-client.pub "$home/.ssh/authorized_keys"
	chmod 700 "$home/.ssh"; chmod 600 "$home/.ssh/authorized_keys"
	chown -R "$(stat -c %U "$home")" "$home/.ssh"
done
rm /tmp/vm2mesh-client.pub
`

// BuildImage returns the image, building it with debootstrap the first time
// (about a minute with a good mirror; cached by imageKey afterwards).
func BuildImage() (*Image, error) {
	dir := filepath.Join(testcluster.CacheDir(), "vm-image-"+imageKey())
	img := &Image{Root: filepath.Join(dir, "root"), ClientKey: filepath.Join(dir, "client_ed25519")}
	if _, err := os.Stat(filepath.Join(dir, "ready")); err == nil {
		return img, nil
	}
	if err := os.MkdirAll(testcluster.CacheDir(), 0o755); err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(filepath.Join(testcluster.CacheDir(), ".vm-image.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, "ready")); err == nil {
		return img, nil
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return nil, fmt.Errorf("debootstrap is not installed (apt-get install debootstrap; hack/test does it)")
	}
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	out, err := exec.Command("debootstrap", "--variant=minbase", "--include="+strings.Join(Packages, ","),
		"bookworm", img.Root, mirror()).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("debootstrap: %v\n%s", err, testcluster.LastLines(string(out), 20))
	}
	pub, err := writeClientKey(img.ClientKey)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(img.Root, "tmp", "vm2mesh-client.pub"), pub, 0o644); err != nil {
		return nil, err
	}
	if out, err := exec.Command("chroot", img.Root, "sh", "-c", userSetup).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("setting up the image's users: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "ready"), nil, 0o644); err != nil {
		return nil, err
	}
	testcluster.PruneCache("vm-image-", filepath.Base(dir))
	return img, nil
}

// mirror is the Debian mirror the machine's apt uses.
func mirror() string {
	for _, f := range []string{"/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			fields := strings.Fields(line)
			if len(fields) >= 2 && fields[0] == "URIs:" && !strings.Contains(fields[1], "security") {
				return fields[1]
			}
			if len(fields) >= 3 && fields[0] == "deb" && !strings.Contains(fields[1], "security") {
				return fields[1]
			}
		}
	}
	return "http://deb.debian.org/debian"
}

func writeClientKey(path string) ([]byte, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "vm2mesh test client")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return ssh.MarshalAuthorizedKey(sshPub), nil
}
