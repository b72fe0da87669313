package service

import (
	"fmt"

	"github.com/nfmirror/nfmirror/internal/config"
	"github.com/nfmirror/nfmirror/route"
)

// Flush removes what a killed nfmirror with the identity inst left behind in
// this namespace, exactly as its state file records it: the ip rules and
// routes it added and the link flags it changed. Its nftables tables went
// with it (the kernel removes a table when its owner dies), and Flush never
// touches a table. It refuses while an instance with this identity runs. It
// reports what it removed; nothing left is not an error.
func Flush(inst config.Instance) ([]string, error) {
	inst = inst.WithDefaults()
	if err := inst.Validate(); err != nil {
		return nil, &InputError{err}
	}
	lock, err := inst.Lock()
	if err != nil {
		return nil, fmt.Errorf("flush: %w; it removes its own rules and routes when it stops", err)
	}
	defer lock.Release()
	removed, err := route.Flush(nil, inst.StatePath())
	if err != nil {
		return removed, fmt.Errorf("remove ip rules and routes: %w", err)
	}
	return removed, nil
}
