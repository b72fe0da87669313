package config

import (
	"errors"
	"fmt"
	"path/filepath"
)

// Defaults of Instance.
const (
	// DefaultTable names the inet and netdev tables nfmirror owns.
	DefaultTable = "nfmirror"
	// DefaultMark is the fwmark base of copies: "nfm\0". Destination i
	// gets DefaultMark|i.
	DefaultMark = 0x6e666d00
	// DefaultMarkMask selects the base part of a mark; the low byte numbers
	// the destination.
	DefaultMarkMask = 0xffffff00
	// DefaultRouteTable is the routing table of destination 0; destination
	// i gets DefaultRouteTable+i.
	DefaultRouteTable = 28262
	// DefaultPriority is the priority of nfmirror's ip rules, before the
	// main table's 32766.
	DefaultPriority = 2826
	// DefaultNFLOGBase and DefaultQueueBase are the first NFLOG group and
	// NFQUEUE queue numbers.
	DefaultNFLOGBase = 6000
	DefaultQueueBase = 6000
	// DefaultStateDir holds the state file, the lock and the control
	// socket.
	DefaultStateDir = "/run/nfmirror"
	// DefaultQueueLen is how many copies a channel buffers between its
	// reader and its writer.
	DefaultQueueLen = 4096
	// MaxDests is the most destinations one instance serves: the
	// destination number lives in the mark's low byte.
	MaxDests = 256
	// GenerationSpan separates the group and queue numbers of two
	// consecutive generations (a reload binds the new numbers before the
	// new rules use them).
	GenerationSpan = 500
)

// Instance is the identity of one nfmirror instance and where it keeps its
// files. Zero fields take the defaults (see WithDefaults).
type Instance struct {
	Table      string // nftables table name, inet and netdev
	Mark       uint32 // fwmark base of copies
	MarkMask   uint32 // the base bits of Mark
	RouteTable int    // routing table of destination 0
	Priority   int    // ip rule priority
	NFLOGBase  uint16 // first NFLOG group
	QueueBase  uint16 // first NFQUEUE queue
	StateDir   string // state file, lock, default socket
	Socket     string // control socket; "" = StateDir/TABLE.sock
	QueueLen   int    // copies buffered per channel
}

// Default returns the default instance.
func Default() Instance { return Instance{}.WithDefaults() }

// WithDefaults fills in the zero fields.
func (i Instance) WithDefaults() Instance {
	if i.Table == "" {
		i.Table = DefaultTable
	}
	if i.Mark == 0 && i.MarkMask == 0 {
		i.Mark, i.MarkMask = DefaultMark, DefaultMarkMask
	}
	if i.RouteTable == 0 {
		i.RouteTable = DefaultRouteTable
	}
	if i.Priority == 0 {
		i.Priority = DefaultPriority
	}
	if i.NFLOGBase == 0 {
		i.NFLOGBase = DefaultNFLOGBase
	}
	if i.QueueBase == 0 {
		i.QueueBase = DefaultQueueBase
	}
	if i.StateDir == "" {
		i.StateDir = DefaultStateDir
	}
	if i.QueueLen == 0 {
		i.QueueLen = DefaultQueueLen
	}
	return i
}

// Validate reports the first field an operator set to a value nfmirror
// cannot use.
func (i Instance) Validate() error {
	switch {
	case !validTableName(i.Table):
		return fmt.Errorf("table name %q: want 1 to 31 letters, digits, '_' or '-', starting with a letter", i.Table)
	case i.Mark&i.MarkMask == 0:
		return errors.New("the fwmark must have a bit set under its mask, or copies could not be told from other packets")
	case ^i.MarkMask&0xff != 0xff:
		return errors.New("the fwmark mask must leave the low 8 bits free: they number the destinations")
	case i.NFLOGBase > 65000 || i.QueueBase > 65000:
		return errors.New("-nflog-base and -queue-base must be at most 65000")
	case i.Priority <= 0 || i.Priority >= 32766:
		return errors.New("-rule-priority must be between 1 and 32765, before the main table")
	case i.RouteTable <= 0 || i.RouteTable+MaxDests > 1<<31-1 || i.RouteTable <= 255 && i.RouteTable+MaxDests > 252:
		return errors.New("-route-table must leave room for 256 tables and avoid 252-255 (default, main, local)")
	case i.QueueLen < 16:
		return errors.New("-queue-len must be at least 16")
	}
	return nil
}

func validTableName(s string) bool {
	if len(s) == 0 || len(s) > 31 {
		return false
	}
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '_' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// DestMark is the fwmark of destination i.
func (i Instance) DestMark(dest int) uint32 { return i.Mark&i.MarkMask | uint32(dest) }

// SocketPath is the control socket: Socket, or TABLE.sock in the state
// directory.
func (i Instance) SocketPath() string {
	if i.Socket != "" {
		return i.Socket
	}
	return filepath.Join(i.StateDir, i.Table+".sock")
}

// StatePath is the state file: what the instance changed on the ports, for
// its own undo and for flush after a crash.
func (i Instance) StatePath() string { return filepath.Join(i.StateDir, i.Table+".state.json") }

// LockPath is the file the running instance holds locked.
func (i Instance) LockPath() string { return filepath.Join(i.StateDir, i.Table+".lock") }
