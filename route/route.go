package route

import (
	"errors"
	"net"

	"github.com/nfmirror/nfmirror/internal/config"
)

// ErrNoDevice is wrapped by Setup when a destination interface does not
// exist; the error text names the interface.
var ErrNoDevice = errors.New("no such mirror interface")

// ErrLeftover is wrapped by Setup when the state file of an earlier run is
// still there (the earlier run was killed): run Flush first.
var ErrLeftover = errors.New("state of an earlier run left behind (run flush)")

// ErrInUse is wrapped by Setup when an ip rule or a routing table that
// nfmirror would use already belongs to someone else: nfmirror refuses to
// start rather than change or later delete it.
var ErrInUse = errors.New("already in use")

// Config says which marks, tables and priority nfmirror uses and where it
// records what it changed. Every field must be set (internal/config holds
// the defaults).
type Config struct {
	Mark      uint32 // fwmark base; destination i gets Mark|i
	MarkMask  uint32 // the base bits of Mark
	Table     int    // table of destination 0; destination i gets Table+i
	Priority  int    // ip rule priority of every rule
	StatePath string // the state file
}

// maxDests is how many destinations the mask leaves room for, at most
// config.MaxDests.
func (c Config) maxDests() int {
	n := int(^c.MarkMask) + 1
	if n <= 0 || n > config.MaxDests {
		return config.MaxDests
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
	// off on this port (disable_ipv6, or an MTU below IPv6's 1280) or
	// altogether: their rule or route could not be added, and copies of
	// that family have no way out.
	FamilyOff []string
	// Shared is set for a port the operator shares with the host's own
	// traffic: its flags are left alone (ARP stays on).
	Shared bool
}

// Dest is one destination to set up.
type Dest struct {
	Name string
	// Shared: the port also carries the host's own traffic; Setup leaves
	// its link flags alone (ARP on, up or down as the operator has it).
	Shared bool
}

// linkState is what Setup found on a destination link and what it changed,
// so that Undo and Flush restore exactly that.
type linkState struct {
	Name     string `json:"name"`
	Index    int    `json:"index"`
	Shared   bool   `json:"shared,omitempty"`
	WasUp    bool   `json:"was_up"`
	WasNoARP bool   `json:"was_noarp"`
	SetUp    bool   `json:"set_up"`    // Setup brought the link up
	SetNoARP bool   `json:"set_noarp"` // Setup turned IFF_NOARP on
	Mark     uint32 `json:"mark"`      // fwmark of this destination
	Table    int    `json:"table"`     // routing table of this destination
	// Rules lists the address families ("ipv4", "ipv6") whose fwmark rule
	// Setup added; Routes the default routes it added, by family, with the
	// ifindex they point at.
	Rules  []string      `json:"rules"`
	Routes []routeRecord `json:"routes"`
}

// routeRecord is one default route Setup added to a destination's table.
type routeRecord struct {
	Family string `json:"family"`
	Index  int    `json:"ifindex"`
}

// state is the content of the state file.
type state struct {
	Priority int         `json:"priority"`
	Mark     uint32      `json:"mark"`
	MarkMask uint32      `json:"mark_mask"`
	Links    []linkState `json:"links"`
}
