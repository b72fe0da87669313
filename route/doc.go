// Package route sets up and undoes the policy routing that carries mirrored
// IP copies out of the mirror interface: an ip rule "fwmark M lookup T" for
// IPv4 and IPv6, a default route in table T through the mirror interface, and
// the mirror interface itself brought up with ARP and neighbour discovery off
// so that no neighbour is ever resolved (a NOARP neighbour resolves to the
// port's own MAC). Everything it applies is declared as data and undone
// exactly.
//
// Setup writes a state file (JSON, Config.StateDir/route.json) before it
// changes anything, naming the links and the flags they had; Undo removes it.
// After a kill -9, Flush removes the rules at the nfmirror priority with an
// nfmirror mark, the routes of their tables, and restores the link flags the
// state file records. A mirror interface that is deleted and created again
// loses its routes: Reapply puts them and the link flags back (call it on
// link events or periodically); the sinks in package mirror find the new
// ifindex by name on their own.
//
// Not done: the port keeps its IPv6 address generation mode, so a port with
// IPv6 link-local autoconfiguration sends its own DAD, router solicitations
// and MLD reports onto the mirror; "ip link set DEV addrgenmode none" before
// starting avoids them.
package route
