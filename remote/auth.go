package remote

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// Authentication, per hop: keys for every hop, the VM's password and
// keyboard-interactive answers for the VM alone.

func authMethods(hop Hop, jump bool, o Options) []ssh.AuthMethod {
	var methods []ssh.AuthMethod
	var signers []ssh.Signer
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" && len(hop.IdentityFiles) == 0 {
		if conn, err := net.Dial("unix", sock); err == nil {
			if s, err := agent.NewClient(conn).Signers(); err == nil {
				signers = append(signers, s...)
			}
		}
	}
	files := hop.IdentityFiles
	if len(files) == 0 {
		files = DefaultIdentityFiles()
	}
	for _, f := range files {
		if s, err := loadKey(f, o.Passphrase); err == nil {
			signers = append(signers, s)
		}
	}
	if len(signers) > 0 {
		methods = append(methods, ssh.PublicKeys(signers...))
	}
	// The password is the VM's: a jump host offered it could keep it.
	if jump {
		return methods
	}
	var password func() (string, error)
	if o.Password != nil {
		// Once: the password and keyboard-interactive methods share the answer.
		password = sync.OnceValues(func() (string, error) { return o.Password(hop.User, hop.HostName) })
		methods = append(methods, ssh.RetryableAuthMethod(ssh.PasswordCallback(password), 1))
	}
	if o.Password != nil || o.Question != nil {
		methods = append(methods, ssh.KeyboardInteractive(func(_, instruction string, questions []string, echos []bool) ([]string, error) {
			answers := make([]string, len(questions))
			for i, q := range questions {
				var err error
				switch {
				case password != nil && isPasswordPrompt(q, echos[i]):
					answers[i], err = password()
				case o.Question != nil:
					answers[i], err = o.Question(hop.User, hop.HostName, instruction, q, echos[i])
				default:
					err = &UnansweredError{Host: hop.String(), Question: q}
				}
				if err != nil {
					return nil, err
				}
			}
			return answers, nil
		}))
	}
	return methods
}

// isPasswordPrompt: only a hidden question about the password gets the password,
// never a one-time code or anything else the server thinks up.
func isPasswordPrompt(question string, echo bool) bool {
	return !echo && strings.Contains(strings.ToLower(question), "password")
}

// UnansweredError: the VM's login asked something that only the operator can
// answer, and there was no one to ask.
type UnansweredError struct {
	Host, Question string
}

func (e *UnansweredError) Error() string {
	return fmt.Sprintf("%s asks %q, which vm2mesh cannot answer headless: log in to the VM with a key instead (vm.identityFile or the ssh-agent)",
		e.Host, strings.TrimSpace(e.Question))
}

func loadKey(path string, passphrase func(string) (string, error)) (ssh.Signer, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := ssh.ParsePrivateKey(pem)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) && passphrase != nil {
		pw, perr := passphrase(path)
		if perr != nil {
			return nil, perr
		}
		return ssh.ParsePrivateKeyWithPassphrase(pem, []byte(pw))
	}
	return s, err
}

