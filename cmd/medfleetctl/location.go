package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	medfleetv1 "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// Where devices are and whether they can be taken: "locate", "find",
// "checkin", "par" and "location history|watch". "device tag" and
// "device status" are in device.go, "facility" in facility.go.

// tagsPrefix names a device by the EPC of the RFID tag on it:
// "tags/E28011700000020F1A2B3C4D".
const tagsPrefix = "tags/"

// epcPattern is an EPC as the server keeps it: 8 to 64 hex digits, upper
// case (a 96-bit SGTIN is 24).
var epcPattern = regexp.MustCompile(`^[0-9A-F]{8,64}$`)

// parseEPC checks an EPC and upper-cases it, as the server stores it.
func parseEPC(s string) (string, error) {
	epc := strings.ToUpper(strings.TrimSpace(s))
	if !epcPattern.MatchString(epc) {
		return "", fmt.Errorf("EPC %q: want 8 to 64 hex digits", s)
	}
	return epc, nil
}

// parseDeviceRef accepts what the location API takes for a device: a bare
// id ("pump-0001"), a resource name ("devices/pump-0001") or the EPC of
// its tag ("tags/E280..."). It returns the resource name or "tags/{EPC}".
func parseDeviceRef(arg string) (string, error) {
	if epc, ok := strings.CutPrefix(arg, tagsPrefix); ok {
		epc, err := parseEPC(epc)
		if err != nil {
			return "", err
		}
		return tagsPrefix + epc, nil
	}
	id, err := parseDeviceID(arg)
	if err != nil {
		return "", fmt.Errorf("%w, or tags/EPC", err)
	}
	return devicesPrefix + id, nil
}

// availabilities maps the words of --status and "device status" to the
// API's availabilities. Decommissioned is not among them: it is "device
// delete"'s to set.
var availabilities = map[string]medfleetv1.Availability{
	"available":      medfleetv1.Availability_AVAILABILITY_AVAILABLE,
	"in_use":         medfleetv1.Availability_AVAILABILITY_IN_USE,
	"soiled":         medfleetv1.Availability_AVAILABILITY_SOILED,
	"in_maintenance": medfleetv1.Availability_AVAILABILITY_IN_MAINTENANCE,
	"out_of_service": medfleetv1.Availability_AVAILABILITY_OUT_OF_SERVICE,
}

// availabilityList is the words of availabilities in lifecycle order,
// for messages.
const availabilityList = "available, in_use, soiled, in_maintenance or out_of_service"

// parseAvailability reads an availability word, in any case and with "-"
// for "_" ("in-use").
func parseAvailability(s string) (medfleetv1.Availability, error) {
	a, ok := availabilities[strings.ReplaceAll(strings.ToLower(s), "-", "_")]
	if !ok {
		return 0, fmt.Errorf("want %s, got %q", availabilityList, s)
	}
	return a, nil
}

// availabilityWord is an availability as the commands spell it:
// "in_use"; "unknown" until the device's first report or a person sets it.
func availabilityWord(a medfleetv1.Availability) string {
	if a == medfleetv1.Availability_AVAILABILITY_UNSPECIFIED {
		return "unknown"
	}
	return enumWord(a.String(), "AVAILABILITY_")
}

// sourceWord is how a location is known: rfid, wifi or manual.
func sourceWord(s medfleetv1.LocationSource) string {
	return enumWord(s.String(), "LOCATION_SOURCE_")
}

// withLocationClient dials the server, runs fn and closes the connection.
func (c *cli) withLocationClient(ctx context.Context, fn func(medfleetv1.LocationServiceClient) error) error {
	return c.withConn(ctx, func(conn *grpc.ClientConn) error {
		return fn(medfleetv1.NewLocationServiceClient(conn))
	})
}

// printLocation writes a device's location in the chosen output format.
func (c *cli) printLocation(l *medfleetv1.DeviceLocation) error {
	if c.flags.output == "json" {
		return writeJSON(c.stdout, l)
	}
	return writeLocation(c.stdout, l, c.now())
}

const locateLong = `Show where a device is: its place from the site down to the zone, how
that is known (an RFID reader's antenna, the Wi-Fi access point it is
associated with, or a person's check-in), how sure the server is, since when
it is there and when it was last seen there. A location without evidence
for longer than the server's location.stale_after is marked STALE: the
device may have moved since.

The device is named by its id, its resource name, or the EPC of its RFID tag
as tags/EPC. With -o json the output is the DeviceLocation.`

func (c *cli) locateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "locate DEVICE|tags/EPC",
		Short: "Show where a device is",
		Long:  locateLong,
		Example: `  medfleetctl locate pump-0001
  medfleetctl locate tags/E28011700000020F1A2B3C4D -o json`,
		Args: exactArgs(1, "one device id or tags/EPC"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := parseDeviceRef(args[0])
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			return c.withLocationClient(cmd.Context(), func(client medfleetv1.LocationServiceClient) error {
				rctx, cancel := c.rpcContext(cmd.Context())
				defer cancel()
				l, err := client.Locate(rctx, &medfleetv1.LocateRequest{Device: ref})
				if err != nil {
					return err
				}
				return c.printLocation(l)
			})
		},
	}
}

const findLong = `Find the devices nearest to a place by walking distance through the
facility (corridors, stairs and lifts, as the facility document connects
its zones), nearest first.

--near is a zone, or a room or a unit, taken as its first zone. --profile or
--model, or both, say what to find. By default only available devices are
listed; --status finds soiled ones for the cleaning round, or devices in
another state. Devices whose location is stale are left out unless
--include-stale.

With -o json the output is the FindNearestResponse.`

func (c *cli) findCommand() *cobra.Command {
	var (
		profile, model, near, state string
		limit                       int32
		includeStale                bool
	)
	cmd := &cobra.Command{
		Use:   "find --profile P|--model M --near PLACE [flags]",
		Short: "Find the nearest available devices of a kind",
		Long:  findLong,
		Example: `  medfleetctl find --profile infusion-pump --near 4w-402
  medfleetctl find --model "Alaris 8100" --near 4-west --limit 10
  medfleetctl find --profile infusion-pump --near spd --status soiled`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if profile == "" && model == "" {
				return usageErrorf(cmd, "--profile or --model: required, what to find")
			}
			if strings.TrimSpace(near) == "" {
				return usageErrorf(cmd, "--near: required, a zone, room or unit")
			}
			if limit < 0 || limit > 50 {
				return usageErrorf(cmd, "--limit: want 1 to 50, got %d", limit)
			}
			req := &medfleetv1.FindNearestRequest{Profile: profile, Model: model, Near: near, Limit: limit, IncludeStale: includeStale}
			if state != "" {
				a, err := parseAvailability(state)
				if err != nil {
					return usageErrorf(cmd, "--status: %v", err)
				}
				req.Availability = a
			}
			return c.withLocationClient(cmd.Context(), func(client medfleetv1.LocationServiceClient) error {
				rctx, cancel := c.rpcContext(cmd.Context())
				defer cancel()
				resp, err := client.FindNearest(rctx, req)
				if err != nil {
					return err
				}
				if c.flags.output == "json" {
					return writeJSON(c.stdout, resp)
				}
				return writeNearbyTable(c.stdout, resp.GetDevices(), c.now())
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&profile, "profile", "", "device profile to find, e.g. infusion-pump")
	fl.StringVar(&model, "model", "", "device model to find")
	fl.StringVar(&near, "near", "", "the zone, room or unit to walk from")
	fl.StringVar(&state, "status", "", "availability to find: "+availabilityList+" (default available)")
	fl.Int32Var(&limit, "limit", 0, "how many devices, at most 50 (default 5)")
	fl.BoolVar(&includeStale, "include-stale", false, "include devices whose location is stale")
	return cmd
}

func (c *cli) checkinCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "checkin DEVICE|tags/EPC PLACE",
		Aliases: []string{"check-in"},
		Short:   "Record that a device is in a zone, as a person saw it",
		Long: `Record that a device is in a zone: a person scanned it there or put it
there. PLACE is a zone, or a room or a unit, taken as its first zone. A
check-in places the device at once, with full confidence; RFID sightings
that persist move it again, Wi-Fi alone does not until the check-in is
stale.

With -o json the output is the device's new DeviceLocation.`,
		Example: `  medfleetctl checkin pump-0001 4w-soiled
  medfleetctl checkin tags/E28011700000020F1A2B3C4D 4w-402`,
		Args: exactArgs(2, "a device id or tags/EPC, and a zone"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := parseDeviceRef(args[0])
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			zone := strings.TrimSpace(args[1])
			if zone == "" {
				return usageErrorf(cmd, "%swant a zone, room or unit, got %q", subPath(cmd), args[1])
			}
			return c.withLocationClient(cmd.Context(), func(client medfleetv1.LocationServiceClient) error {
				rctx, cancel := c.rpcContext(cmd.Context())
				defer cancel()
				l, err := client.CheckIn(rctx, &medfleetv1.CheckInRequest{Device: ref, Zone: zone})
				if err != nil {
					return err
				}
				if c.flags.output == "json" {
					return writeJSON(c.stdout, l)
				}
				_, err = fmt.Fprintf(c.stdout, "checked in %s at %s\n", cell(deviceID(l.GetDevice())), placeSummary(l.GetPlace()))
				return err
			})
		},
	}
}

func (c *cli) parCommand() *cobra.Command {
	var (
		unit  string
		below bool
	)
	cmd := &cobra.Command{
		Use:   "par [--unit U] [--below]",
		Short: "Show each unit's available devices against its par levels",
		Long: `Show, for each unit and device profile the facility gives a par level,
how many available devices are located in the unit now (stale locations
not counted) against the fewest it should hold. BELOW marks a unit short of
devices: bring some from the nearest unit with spares, or from sterile
processing.

With -o json the output is the ListParLevelsResponse.`,
		Example: `  medfleetctl par
  medfleetctl par --unit 4-west
  medfleetctl par --below -o json`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withLocationClient(cmd.Context(), func(client medfleetv1.LocationServiceClient) error {
				rctx, cancel := c.rpcContext(cmd.Context())
				defer cancel()
				resp, err := client.ListParLevels(rctx, &medfleetv1.ListParLevelsRequest{Unit: unit, BelowOnly: below})
				if err != nil {
					return err
				}
				if c.flags.output == "json" {
					return writeJSON(c.stdout, resp)
				}
				return writeParTable(c.stdout, resp.GetLevels())
			})
		},
	}
	cmd.Flags().StringVar(&unit, "unit", "", "only this unit")
	cmd.Flags().BoolVar(&below, "below", false, "only the levels a unit is below")
	return cmd
}

func (c *cli) locationCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "location",
		Aliases: []string{"locations"},
		Short:   "Show where a device has been; watch devices move",
		Long: `Where devices have been and where they go. "locate" shows where a device
is now, "find" the nearest of a kind, "checkin" records a place.`,
		Args: subcommandArgs,
		RunE: missingSubcommand,
	}
	cmd.AddCommand(
		c.locationHistoryCommand(),
		c.locationWatchCommand(),
	)
	return cmd
}

func (c *cli) locationHistoryCommand() *cobra.Command {
	var since string
	cmd := &cobra.Command{
		Use:   "history DEVICE|tags/EPC [--since 24h]",
		Short: "List a device's moves, newest first",
		Long: `List the moves of a device, newest first: when, to which unit, room and
zone, and on what evidence. The server keeps a bounded history
(location.history_retention, location.history_max).

--since is a duration back from now (90m, 24h, 7d), or a date (the start of
that UTC day) or an RFC 3339 time; by default every move the server keeps.
With -o json the output is one ListLocationHistoryResponse holding them all.`,
		Example: `  medfleetctl location history pump-0001 --since 24h
  medfleetctl location history tags/E28011700000020F1A2B3C4D --since 2026-03-01`,
		Args: exactArgs(1, "one device id or tags/EPC"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := parseDeviceRef(args[0])
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			req := &medfleetv1.ListLocationHistoryRequest{Device: ref}
			var from time.Time
			if since != "" {
				if from, err = parseSince(since, c.now()); err != nil {
					return usageError{cmd: cmd.CommandPath(), err: err}
				}
				req.StartTime = timestamppb.New(from)
			}
			var changes []*medfleetv1.LocationChange
			err = c.withLocationClient(cmd.Context(), func(client medfleetv1.LocationServiceClient) error {
				var err error
				changes, err = allPages(cmd.Context(), c, "location history", func(ctx context.Context, token string) ([]*medfleetv1.LocationChange, string, error) {
					req.PageToken = token
					resp, err := client.ListLocationHistory(ctx, req)
					return resp.GetChanges(), resp.GetNextPageToken(), err
				})
				return err
			})
			if err != nil {
				return err
			}
			if c.flags.output == "json" {
				return writeJSON(c.stdout, &medfleetv1.ListLocationHistoryResponse{Changes: changes})
			}
			return writeHistoryTable(c.stdout, changes, from, c.now())
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "only moves since then: a duration back (24h, 7d), a date or an RFC 3339 time")
	return cmd
}

// parseSince reads --since: a duration back from now ("24h", "7d"), a
// date (the start of that UTC day) or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := parseDays(s); err == nil {
		return now.Add(-d), nil
	}
	if t, err := parseWhen("--since", s, startOfDay); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--since: want a duration such as 24h or 7d, a date (2026-03-01) or an RFC 3339 time, got %q", s)
}

const locationWatchLong = `Print location events as they happen, one line each, until Ctrl-C or
until --for has passed; both end the command with exit code 0.

  moved           a device arrived in another zone
  stale           nothing has seen a device for location.stale_after
  availability    a device became available, in_use, soiled...
  par below       a unit went below its par level for a profile
  par restored    and back up

--unit and --profile narrow the events to one unit and one profile. With
-o json each event is one LocationEvent on a line of its own (JSON Lines).
A watcher that falls behind is dropped by the server (exit code 1): watch
again.`

func (c *cli) locationWatchCommand() *cobra.Command {
	var (
		unit, profile string
		forDuration   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "watch [--unit U] [--profile P] [--for DURATION]",
		Short: "Print location, availability and par events as they happen",
		Long:  locationWatchLong,
		Example: `  medfleetctl location watch --unit 4-west
  medfleetctl location watch --profile infusion-pump --for 10m -o json`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if forDuration < 0 {
				return usageErrorf(cmd, "--for: must not be negative, got %s", forDuration)
			}
			ctx := cmd.Context()
			if forDuration > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, forDuration)
				defer cancel()
			}
			req := &medfleetv1.WatchLocationsRequest{Unit: unit, Profile: profile}
			return c.withLocationClient(ctx, func(client medfleetv1.LocationServiceClient) error {
				return c.watchLocations(ctx, client, req)
			})
		},
	}
	cmd.Flags().StringVar(&unit, "unit", "", "only events of this unit")
	cmd.Flags().StringVar(&profile, "profile", "", "only events of devices of this profile")
	cmd.Flags().DurationVar(&forDuration, "for", 0, "stop after this long (default: until Ctrl-C)")
	return cmd
}

// watchLocations prints the events of one stream until ctx ends, which is
// the normal end of a watch. The stream has no deadline but ctx's.
func (c *cli) watchLocations(ctx context.Context, client medfleetv1.LocationServiceClient, req *medfleetv1.WatchLocationsRequest) error {
	stream, err := client.WatchLocations(ctx, req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	for {
		ev, err := stream.Recv()
		_, timed := ctx.Deadline()
		switch {
		case ctx.Err() != nil:
			return nil // --for has passed, or Ctrl-C
		case timed && status.Code(err) == codes.DeadlineExceeded:
			// --for has passed on the server's clock first: the deadline
			// travels with the stream, and the server ends it.
			return nil
		case err == io.EOF:
			return status.Error(codes.Unavailable, "the server ended the watch; watch again")
		case err != nil:
			return err
		}
		if c.flags.output == "json" {
			err = writeJSONLine(c.stdout, ev)
		} else {
			_, err = fmt.Fprintln(c.stdout, eventLine(ev))
		}
		if err != nil {
			return err
		}
	}
}

// writeJSONLine writes m as protojson on one line: JSON Lines, for a
// stream.
func writeJSONLine(w io.Writer, m proto.Message) error {
	b, err := protojson.Marshal(m)
	if err != nil {
		return err
	}
	// protojson varies its whitespace on purpose; compact it away.
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return err
	}
	buf.WriteByte('\n')
	_, err = w.Write(buf.Bytes())
	return err
}

// eventKindWords are the kinds of LocationEvent as the watch prints them.
var eventKindWords = map[medfleetv1.LocationEvent_Kind]string{
	medfleetv1.LocationEvent_KIND_MOVED:        "moved",
	medfleetv1.LocationEvent_KIND_STALE:        "stale",
	medfleetv1.LocationEvent_KIND_AVAILABILITY: "availability",
	medfleetv1.LocationEvent_KIND_PAR_BELOW:    "par below",
	medfleetv1.LocationEvent_KIND_PAR_RESTORED: "par restored",
}

// eventLine is one event as "location watch" prints it: the time, the kind,
// then what it is about.
//
//	2026-03-01T12:00:00Z  moved         pump-0001  infusion-pump  available  4-west/4w-402/4w-402-bed  manual: checked in by users/admin
//	2026-03-01T12:00:00Z  par below     4-west  infusion-pump  5 available, par 6
func eventLine(ev *medfleetv1.LocationEvent) string {
	kind, ok := eventKindWords[ev.GetKind()]
	if !ok {
		kind = strings.ToLower(strings.TrimPrefix(ev.GetKind().String(), "KIND_"))
	}
	at := "-"
	if ev.GetTime() != nil {
		at = ev.GetTime().AsTime().UTC().Format(time.RFC3339)
	}
	var what string
	if p := ev.GetPar(); p != nil {
		what = fmt.Sprintf("%s  %s  %d available, par %d", cell(p.GetUnit()), cell(p.GetProfile()), p.GetAvailable(), p.GetMin())
	} else {
		l := ev.GetLocation()
		what = strings.Join([]string{
			cell(deviceID(l.GetDevice())),
			cell(l.GetProfile()),
			availabilityWord(l.GetAvailability()),
			placePath(l.GetPlace()),
		}, "  ")
		if l.GetPlace() != nil {
			what += "  " + evidence(l)
		}
	}
	return fmt.Sprintf("%s  %-12s  %s", at, kind, what)
}

// placePath is where a place is as ids, unit/room/zone: the ids that
// "find --near", "checkin" and "--unit" take. "-" for no place.
func placePath(p *medfleetv1.Place) string {
	if p == nil {
		return "-"
	}
	return cell(p.GetUnit()) + "/" + cell(p.GetRoom()) + "/" + cell(p.GetZone())
}

// placeSummary is a place for a sentence: "4w-402-bed (Room 402, 4 West
// Medical-Surgical)".
func placeSummary(p *medfleetv1.Place) string {
	if p == nil {
		return "-"
	}
	var names []string
	for _, n := range []string{p.GetRoomName(), p.GetUnitName()} {
		if n != "" {
			names = append(names, cell(n))
		}
	}
	if len(names) == 0 {
		return cell(p.GetZone())
	}
	return cell(p.GetZone()) + " (" + strings.Join(names, ", ") + ")"
}

// named is a place level for people: "Room 402 (4w-402)", or the id
// alone when it has no other name.
func named(name, id string) string {
	if name == "" || name == id {
		return cell(id)
	}
	return cell(name) + " (" + cell(id) + ")"
}

// evidence is how a location is known: "manual: checked in by users/alice".
func evidence(l *medfleetv1.DeviceLocation) string {
	s := sourceWord(l.GetSource())
	if d := oneLine(l.GetDetail()); d != "" {
		s += ": " + cell(d)
	}
	return s
}

// confidencePercent is a 0..1 confidence as "85%".
func confidencePercent(v float64) string {
	return strconv.FormatFloat(v*100, 'f', 0, 64) + "%"
}

// seenCell is how long ago a device was last seen, marked STALE when the
// server says its location is.
func seenCell(l *medfleetv1.DeviceLocation, now time.Time) string {
	s := lastSeen(l.GetSeenTime(), now)
	if l.GetStale() {
		s += ", STALE"
	}
	return s
}

// writeLocation writes a device's location as "key: value" lines.
func writeLocation(w io.Writer, l *medfleetv1.DeviceLocation, now time.Time) error {
	kvs := [][2]string{
		{"device", cell(deviceID(l.GetDevice()))},
		{"profile", cell(l.GetProfile())},
		{"model", cell(l.GetModel())},
		{"availability", availabilityWord(l.GetAvailability())},
	}
	p := l.GetPlace()
	if p == nil {
		kvs = append(kvs, [2]string{"place", "unknown: never located"})
		return writeKeyValues(w, kvs)
	}
	kvs = append(kvs,
		[2]string{"site", cell(p.GetSite())},
		[2]string{"building", cell(p.GetBuilding())},
		[2]string{"floor", named(p.GetFloorName(), p.GetFloor())},
		[2]string{"unit", named(p.GetUnitName(), p.GetUnit())},
		[2]string{"room", named(p.GetRoomName(), p.GetRoom())},
		[2]string{"zone", cell(p.GetZone())},
		[2]string{"source", evidence(l)},
		[2]string{"confidence", confidencePercent(l.GetConfidence())},
		[2]string{"since", timeAndAge(l.GetSinceTime(), now, "-")},
		[2]string{"last seen", seenCell(l, now)},
	)
	return writeKeyValues(w, kvs)
}

// writeNearbyTable writes the devices "find" found, nearest first, with a
// count.
func writeNearbyTable(w io.Writer, devices []*medfleetv1.NearbyDevice, now time.Time) error {
	if len(devices) > 0 {
		tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "RANK\tDEVICE\tAVAILABILITY\tUNIT\tROOM\tZONE\tDISTANCE (m)\tSEEN")
		for i, d := range devices {
			l := d.GetLocation()
			p := l.GetPlace()
			fmt.Fprintln(tw, strings.Join([]string{
				strconv.Itoa(i + 1),
				cell(deviceID(l.GetDevice())),
				availabilityWord(l.GetAvailability()),
				cell(p.GetUnit()),
				cell(p.GetRoom()),
				cell(p.GetZone()),
				strconv.FormatFloat(d.GetDistanceM(), 'f', 1, 64),
				seenCell(l, now),
			}, "\t"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintln(w, countNoun(len(devices), "device"))
	return err
}

// writeParTable writes par levels as a table, with a count of those below.
func writeParTable(w io.Writer, levels []*medfleetv1.ParStatus) error {
	below := 0
	if len(levels) > 0 {
		tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "UNIT\tNAME\tPROFILE\tAVAILABLE\tPAR\tSTATUS")
		for _, p := range levels {
			st := "ok"
			if p.GetBelow() {
				st = "BELOW"
				below++
			}
			fmt.Fprintln(tw, strings.Join([]string{
				cell(p.GetUnit()),
				cell(p.GetUnitName()),
				cell(p.GetProfile()),
				strconv.Itoa(int(p.GetAvailable())),
				strconv.Itoa(int(p.GetMin())),
				st,
			}, "\t"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "%s, %d below\n", countNoun(len(levels), "par level"), below)
	return err
}

// writeHistoryTable writes a device's moves, newest first, with a count
// and, when --since was given, since when.
func writeHistoryTable(w io.Writer, changes []*medfleetv1.LocationChange, since, now time.Time) error {
	if len(changes) > 0 {
		tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tAGE\tUNIT\tROOM\tZONE\tSOURCE\tEVIDENCE")
		for _, ch := range changes {
			at := "-"
			if ch.GetTime() != nil {
				at = ch.GetTime().AsTime().UTC().Format(time.RFC3339)
			}
			p := ch.GetPlace()
			fmt.Fprintln(tw, strings.Join([]string{
				at,
				lastSeen(ch.GetTime(), now),
				cell(p.GetUnit()),
				cell(p.GetRoom()),
				cell(p.GetZone()),
				sourceWord(ch.GetSource()),
				cell(oneLine(ch.GetDetail())),
			}, "\t"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	s := countNoun(len(changes), "move")
	if !since.IsZero() {
		s += " since " + since.UTC().Format(time.RFC3339)
	}
	_, err := fmt.Fprintln(w, s)
	return err
}
