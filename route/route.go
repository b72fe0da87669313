package route

import (
	"errors"
	"net"
	"os"
	"path/filepath"
)

// Defaults of Config. Destination i (0-based, in the order given to Setup)
// gets fwmark DefaultMark|i and routing table DefaultTable+i.
const (
	// DefaultMark is the fwmark base of copies: "nfm\0".
	DefaultMark = 0x6e666d00
	// DefaultMarkMask selects the base part of a mark; the low byte numbers
	// the destination, so at most 256 destinations.
	DefaultMarkMask = 0xffffff00
	// DefaultTable is the routing table of destination 0.
	DefaultTable = 28262
	// DefaultPriority is the ip rule priority of every nfmirror rule, before
	// the main table's 32766.
	DefaultPriority = 2826
	// DefaultStateDir is where the state file lives unless Config says
	// otherwise.
	DefaultStateDir = "/run/nfmirror"
)

// stateFile is the name of the state file inside Config.StateDir.
const stateFile = "route.json"

// MaxDests is the largest number of destinations one Setup handles: the
// destination number lives in the bits of the mark outside MarkMask.
const MaxDests = 256

// ErrNoDevice is wrapped by Setup when a destination interface does not
// exist; the error text names the interface.
var ErrNoDevice = errors.New("no such mirror interface")

// ErrLeftover is wrapped by Setup when the state file of an earlier run is
// still there (the earlier run was killed): run Flush first.
var ErrLeftover = errors.New("state of an earlier run left behind (run flush)")

// Config says which marks, tables and priority nfmirror uses. Zero fields take
// the defaults.
type Config struct {
	Mark     uint32 // fwmark base; destination i gets Mark|i
	MarkMask uint32 // the base bits of Mark
	Table    int    // table of destination 0; destination i gets Table+i
	Priority int    // ip rule priority of every rule
	StateDir string // where the state file is written (DefaultStateDir)
}

func (c Config) withDefaults() Config {
	if c.Mark == 0 {
		c.Mark = DefaultMark
	}
	if c.MarkMask == 0 {
		c.MarkMask = DefaultMarkMask
	}
	if c.Table == 0 {
		c.Table = DefaultTable
	}
	if c.Priority == 0 {
		c.Priority = DefaultPriority
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	return c
}

// maxDests is how many destinations the mask leaves room for.
func (c Config) maxDests() int {
	n := int(^c.MarkMask) + 1
	if n <= 0 || n > MaxDests {
		return MaxDests
	}
	return n
}

// Port is one mirror interface as set up: where copies marked Mark are routed.
type Port struct {
	Name  string           // interface name, as in the rules file
	Index int              // ifindex when Setup (or Reapply) ran
	Mark  uint32           // fwmark that routes a copy out of this port
	Table int              // routing table holding the port's default routes
	MTU   int              // interface MTU
	MAC   net.HardwareAddr // the port's own MAC: destination of copies, NOARP
	// FamilyOff names the IP families ("ipv4", "ipv6") the host has turned
	// off on this port (disable_ipv6) or altogether: their rule or route
	// could not be added, and copies of that family have no way out.
	FamilyOff []string
}

// linkState is what Setup found on a destination link and what it changed,
// so that Undo and Flush restore exactly that.
type linkState struct {
	Name     string `json:"name"`
	Index    int    `json:"index"`
	WasUp    bool   `json:"was_up"`
	WasNoARP bool   `json:"was_noarp"`
	SetUp    bool   `json:"set_up"`    // Setup brought the link up
	SetNoARP bool   `json:"set_noarp"` // Setup turned IFF_NOARP on
	Mark     uint32 `json:"mark"`      // fwmark of this destination
	Table    int    `json:"table"`     // routing table of this destination
}

// state is the content of the state file.
type state struct {
	Priority int         `json:"priority"`
	Mark     uint32      `json:"mark"`
	MarkMask uint32      `json:"mark_mask"`
	Links    []linkState `json:"links"`
}

// Leftover reports whether the state file of an earlier run is still there:
// that run was killed, and Setup will refuse (ErrLeftover) until Flush ran.
func Leftover(cfg Config) bool {
	cfg = cfg.withDefaults()
	_, err := os.Stat(filepath.Join(cfg.StateDir, stateFile))
	return err == nil
}
