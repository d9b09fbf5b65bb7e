package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	medfleetv1 "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// importChunk is the size of the pieces a file is sent in.
const importChunk = 256 << 10

const importLong = `Import devices from a CMMS inventory in CSV, as "device export" writes it
or as a CMMS exports it (docs/operations.md, "CMMS import and export").

Headers are matched by name, in any case and spelling a CMMS uses ("Asset
#", "Serial No.", "Last PM Date"...); --map maps the others. Columns:
asset_tag (required), device_id, manufacturer, model, serial, udi, profile,
site, location (a zone, room or unit id), last_pm_date (YYYY-MM-DD),
risk_class (low, medium, high, life-support), rfid_tag, and label.<key>.

Every row is checked first. If any row has a problem, nothing is applied and
each problem is printed with its line ("inventory.csv: line 12: serial:
..."); exit code 5. --dry-run checks and applies nothing in any case. Rows
are matched to devices by device_id, else by asset tag: running the same
import again changes nothing.

A location is applied as a check-in unless an RFID or Wi-Fi location is
live; a last PM date counts as the model's pm-inspection tasks done then.`

func (c *cli) deviceImportCommand() *cobra.Command {
	var (
		file    string
		dryRun  bool
		mapping []string
	)
	cmd := &cobra.Command{
		Use:   "import -f FILE [--dry-run] [--map HEADER=COLUMN]...",
		Short: "Import devices from a CMMS inventory (CSV)",
		Long:  importLong,
		Example: `  medfleetctl device import -f examples/cmms/inventory.csv --dry-run
  medfleetctl device import -f export.csv --map 'Equip Ctrl=asset_tag' --map 'Bldg Room=location'`,
		Args: exactArgs(0, "no arguments; the file is -f FILE"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usageErrorf(cmd, "-f: required, the inventory (CSV)")
			}
			data, err := os.ReadFile(file)
			if err != nil {
				return usageErrorf(cmd, "-f %q: %v", file, unwrapPath(err))
			}
			columns := map[string]string{}
			for _, kv := range mapping {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || strings.TrimSpace(k) == "" || v == "" {
					return usageErrorf(cmd, "--map %q: want HEADER=COLUMN, as in 'Equip Ctrl=asset_tag'", kv)
				}
				columns[k] = v
			}
			return c.withDeviceClient(cmd.Context(), func(client medfleetv1.DeviceServiceClient) error {
				rctx, cancel := c.rpcContext(cmd.Context())
				defer cancel()
				stream, err := client.ImportDevices(rctx)
				if err != nil {
					return err
				}
				first := &medfleetv1.ImportDevicesRequest{ValidateOnly: dryRun, ColumnMap: columns}
				for off := 0; off == 0 || off < len(data); off += importChunk {
					req := first
					if off > 0 {
						req = &medfleetv1.ImportDevicesRequest{}
					}
					req.Data = data[off:min(off+importChunk, len(data))]
					if err := stream.Send(req); err != nil {
						break // the server's answer says why
					}
				}
				resp, err := stream.CloseAndRecv()
				if err != nil {
					return err
				}
				if c.flags.output == "json" {
					if err := writeJSON(c.stdout, resp); err != nil {
						return err
					}
				} else if err := writeImport(c.stdout, file, resp, dryRun); err != nil {
					return err
				}
				if n := len(resp.GetProblems()); n > 0 {
					return status.Errorf(codes.InvalidArgument, "%s: %s; nothing was applied", file, countNoun(n, "problem"))
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the inventory, CSV")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "check every row; apply nothing")
	cmd.Flags().StringArrayVar(&mapping, "map", nil, "read the column with this header as a column: 'Equip Ctrl=asset_tag' (repeatable)")
	return cmd
}

// writeImport prints an import's outcome: problems and warnings a line
// each, then the counts.
func writeImport(w io.Writer, file string, r *medfleetv1.ImportDevicesResponse, dryRun bool) error {
	var b strings.Builder
	line := func(p *medfleetv1.ImportProblem, kind string) {
		fmt.Fprintf(&b, "%s: line %d: %s", file, p.GetLine(), kind)
		if p.GetColumn() != "" {
			fmt.Fprintf(&b, "%s: ", p.GetColumn())
		}
		fmt.Fprintln(&b, p.GetMessage())
	}
	for _, p := range r.GetProblems() {
		line(p, "")
	}
	for _, p := range r.GetWarnings() {
		line(p, "warning: ")
	}
	switch {
	case len(r.GetProblems()) > 0:
		fmt.Fprintf(&b, "%s: %s, %s; nothing applied\n", file, countNoun(int(r.GetRows()), "row"), countNoun(len(r.GetProblems()), "problem"))
	case dryRun:
		fmt.Fprintf(&b, "%s: %s, no problem; nothing applied (--dry-run)\n", file, countNoun(int(r.GetRows()), "row"))
	default:
		fmt.Fprintf(&b, "%s: %s: %d created, %d updated, %d unchanged\n", file, countNoun(int(r.GetRows()), "row"),
			r.GetCreated(), r.GetUpdated(), r.GetUnchanged())
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (c *cli) deviceExportCommand() *cobra.Command {
	var (
		f                  listFilter
		out                string
		showDecommissioned bool
	)
	cmd := &cobra.Command{
		Use:   "export [-f FILE] [filter flags]",
		Short: "Export devices as a CMMS inventory (CSV)",
		Long: `Write the devices, or those the filter flags choose (as in "device list"),
as CSV in the format "device import" reads: registry fields, the current
zone, the last PM date and labels. Without -f, to standard output.`,
		Example: `  medfleetctl device export -f fleet.csv
  medfleetctl device export --profile infusion-pump > pumps.csv`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			filter, err := f.build()
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			w := c.stdout
			if out != "" {
				file, err := os.Create(out)
				if err != nil {
					return usageErrorf(cmd, "-f %q: %v", out, unwrapPath(err))
				}
				defer file.Close()
				w = file
			}
			err = c.withDeviceClient(cmd.Context(), func(client medfleetv1.DeviceServiceClient) error {
				rctx, cancel := c.rpcContext(cmd.Context())
				defer cancel()
				stream, err := client.ExportDevices(rctx, &medfleetv1.ExportDevicesRequest{Filter: filter, ShowDecommissioned: showDecommissioned})
				if err != nil {
					return err
				}
				for {
					resp, err := stream.Recv()
					if errors.Is(err, io.EOF) {
						return nil
					}
					if err != nil {
						return err
					}
					if _, err := w.Write(resp.GetData()); err != nil {
						return err
					}
				}
			})
			if err != nil && out != "" {
				os.Remove(out) // no half file
			}
			return err
		},
	}
	f.add(cmd.Flags())
	cmd.Flags().StringVarP(&out, "file", "f", "", "write to this file rather than standard output")
	cmd.Flags().BoolVar(&showDecommissioned, "show-decommissioned", false, "include decommissioned devices")
	return cmd
}
