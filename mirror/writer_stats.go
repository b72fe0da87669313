package mirror

import (
	"fmt"
	"strings"
)

// WriterStats counts what a writer did and says how its copies leave.
type WriterStats struct {
	// Devices lists where each family's copies leave.
	Devices []WriterDevice `json:"devices"`
	// Packets counts copies handed to the writer.
	Packets uint64 `json:"packets"`
	// Frames counts frames written (a segmented copy counts each).
	Frames uint64 `json:"frames"`
	// IP counts IP copies given an Ethernet header (layer 3 copies).
	IP uint64 `json:"ip"`
	// Ethernet counts Ethernet frames from netdev hooks (layer 2 copies).
	Ethernet uint64 `json:"ethernet"`
	// Segmented counts copies larger than the MTU cut here.
	Segmented uint64 `json:"segmented"`
	// GSO counts TCP super-packets handed whole to a device that segments
	// them in hardware.
	GSO uint64 `json:"gso"`
	// ChecksumsCompleted counts copies whose partial checksum was completed.
	ChecksumsCompleted uint64 `json:"checksums_completed"`
	// Errors counts copies not (completely) written.
	Errors uint64 `json:"errors"`
	// NoRoute counts, among Errors, copies of a family with no route.
	NoRoute uint64 `json:"no_route"`
	// NoCarrier counts, among Errors, copies for a device that was down or
	// had no carrier.
	NoCarrier uint64 `json:"no_carrier"`
	// Lookups counts lookups of the device after a failed write.
	Lookups uint64 `json:"lookups"`
}

// WriterDevice is one device a writer's copies leave by.
type WriterDevice struct {
	// Families are "ipv4" and/or "ipv6": whose copies take this device
	// (frames from netdev hooks take the IPv4 one if any).
	Families []string `json:"families"`
	Name     string   `json:"name"`
	MTU      int      `json:"mtu"`
	// Segments says who cuts copies larger than the MTU: "nfmirror", or
	// "device (TSO)" for a NIC that segments TCP in hardware.
	Segments string `json:"segments"`
	// Carrier is false while the device is down or has no carrier.
	Carrier bool `json:"carrier"`
}

// Describe says in one line how the copies leave: by which devices, framed
// how, segmented by whom.
func (st WriterStats) Describe() string {
	if len(st.Devices) == 0 {
		return "no route: copies are counted as errors"
	}
	var b strings.Builder
	for i, d := range st.Devices {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s by device %s (mtu %d, larger copies cut by %s", strings.Join(d.Families, "+"), d.Name, d.MTU, d.Segments)
		if !d.Carrier {
			b.WriteString(", NO CARRIER")
		}
		b.WriteString(")")
	}
	fmt.Fprintf(&b, "; %d IP copies framed, %d Ethernet frames as seen, %d segmented here, %d handed whole to the device, %d checksums completed",
		st.IP, st.Ethernet, st.Segmented, st.GSO, st.ChecksumsCompleted)
	return b.String()
}
