// Package service runs one nfmirror instance: it loads and checks a rules
// file, sets up the mirror ports' policy routing, starts the copy pipeline,
// installs the nftables rules, reloads on request, serves status, and undoes
// all of it on shutdown. The CLI only parses flags and calls it.
package service

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/nfmirror/nfmirror/nfrules"
)

// InputError wraps an error in the user's input (the rules file, or a
// device it names that does not exist): nothing was changed, and the CLI
// prints Err with nfrules.Describe and exits 2.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// Load parses, checks and compiles the rules file at path. With
// requireDevices, every mirror destination and every device a netdev block
// reads must exist on this machine, as apply needs; check leaves that out so
// a file can be checked anywhere. The error, if any, is an *InputError.
func Load(path string, opt nfrules.Options, requireDevices bool) (*nfrules.Plan, error) {
	rs, err := nfrules.ParseFile(path)
	if err != nil {
		return nil, &InputError{err}
	}
	if requireDevices {
		if err := checkDevices(rs); err != nil {
			addSource(err.(nfrules.ErrorList))
			return nil, &InputError{err}
		}
	}
	plan, err := nfrules.Compile(rs, opt)
	if err != nil {
		return nil, &InputError{err}
	}
	return plan, nil
}

// checkDevices reports, at its position in the file, every device the
// ruleset names that this machine does not have.
func checkDevices(rs *nfrules.Ruleset) error {
	var errs nfrules.ErrorList
	seen := map[string]bool{}
	missing := func(name string) bool {
		if v, ok := seen[name]; ok {
			return !v
		}
		_, err := net.InterfaceByName(name)
		seen[name] = err == nil
		return err != nil
	}
	for _, b := range rs.Blocks {
		if b.Device != "" && missing(b.Device) {
			errs = append(errs, &nfrules.Error{Pos: b.Pos, Msg: fmt.Sprintf("%s %q: no such interface", b.Hook, b.Device)})
		}
		for _, r := range b.Rules {
			for _, m := range r.Mirrors {
				if missing(m.Dest) {
					errs = append(errs, &nfrules.Error{Pos: m.Pos, Msg: fmt.Sprintf("mirror to %q: no such interface", m.Dest)})
				}
			}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// addSource fills in the source line of errors found after parsing, so
// that they print with a caret like the parser's own.
func addSource(errs nfrules.ErrorList) {
	files := map[string][]string{}
	for _, e := range errs {
		if e.Source != "" || !e.Pos.IsValid() {
			continue
		}
		lines, ok := files[e.Pos.File]
		if !ok {
			data, _ := os.ReadFile(e.Pos.File)
			lines = strings.Split(string(data), "\n")
			files[e.Pos.File] = lines
		}
		if e.Pos.Line <= len(lines) {
			e.Source = strings.TrimRight(lines[e.Pos.Line-1], "\r")
		}
	}
}

// destinations lists the mirror interfaces a plan replays copies onto, in
// first-use order: destination i gets fwmark MARK|i and routing table TABLE+i.
func destinations(plan *nfrules.Plan) []string {
	var dests []string
	seen := map[string]bool{}
	for _, c := range plan.Channels {
		if !seen[c.Dest] {
			seen[c.Dest] = true
			dests = append(dests, c.Dest)
		}
	}
	return dests
}

var errNoChannels = errors.New("the rules use no mirror destination")
