package app

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/vm2mesh/vm2mesh/remote"
	"github.com/vm2mesh/vm2mesh/steps"
)

// terminalPrompts ask on the terminal when there is one; without one they are
// nil, and the VM half refuses what it would have asked (the answers file's
// hostKeyFingerprint, acceptNewHostKey and password files answer instead).
func terminalPrompts(stdio IO) steps.Prompts {
	in, ok := stdio.In.(*os.File)
	if !ok || !term.IsTerminal(int(in.Fd())) {
		return steps.Prompts{}
	}
	secret := func(prompt string) (string, error) {
		fmt.Fprint(stdio.Out, prompt)
		b, err := term.ReadPassword(int(in.Fd()))
		fmt.Fprintln(stdio.Out)
		return string(b), err
	}
	return steps.Prompts{
		HostKey: func(host, keyType, fp string) (remote.HostKeyDecision, error) {
			fmt.Fprintf(stdio.Out, "%s is not in known_hosts. It offers this %s key:\n  %s\n", hostLabel(host), keyType, fp)
			fmt.Fprint(stdio.Out, "Trust it? [y]es and remember / [o]nce / [N]o: ")
			switch answer(stdio.In) {
			case "y", "yes":
				return remote.AcceptAndRemember, nil
			case "o", "once":
				return remote.AcceptOnce, nil
			}
			return remote.RejectHost, nil
		},
		Passphrase: func(file string) (string, error) { return secret("Passphrase for " + file + ": ") },
		Password:   func(user, host string) (string, error) { return secret(user + "@" + host + "'s password: ") },
		Sudo: func(user, host string) (string, error) {
			return secret("[sudo] password for " + user + " on " + host + ": ")
		},
		// The server's words are shown as it sent them, cleaned of escape
		// sequences; the answer is echoed only when the server says so.
		Question: func(user, host, instruction, question string, echo bool) (string, error) {
			if instruction = remote.CleanText(strings.TrimSpace(instruction)); instruction != "" {
				fmt.Fprintln(stdio.Out, instruction)
			}
			prompt := user + "@" + host + " asks: " + remote.CleanText(question)
			if !echo {
				return secret(prompt)
			}
			fmt.Fprint(stdio.Out, prompt)
			line, err := bufio.NewReader(stdio.In).ReadString('\n')
			return strings.TrimRight(line, "\r\n"), err
		},
	}
}

// hostLabel names the host a host key prompt is about: the VM, or a jump host
// on the way to it (Dial says which).
func hostLabel(host string) string {
	if strings.HasPrefix(host, "jump host ") {
		return "The " + host
	}
	return "The VM " + host
}

func answer(r io.Reader) string {
	line, _ := bufio.NewReader(r).ReadString('\n')
	return strings.ToLower(strings.TrimSpace(line))
}

func confirm(in io.Reader, out io.Writer, question string) bool {
	fmt.Fprintf(out, "%s [y/N] ", question)
	switch answer(in) {
	case "y", "yes":
		return true
	}
	return false
}

var errNotConfirmed = errors.New("nothing changed: not confirmed")
