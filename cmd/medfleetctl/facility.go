package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	medfleetv1 "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// The facility is checked by the server only: its parser,
// inventory/facility, is pure Go, but medfleetctl must not link anything
// under inventory/ (TestDependencies). "facility apply --dry-run" asks the
// server to check a document without applying it.

func (c *cli) facilityCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "facility",
		Short: "Apply and show the facility: sites, floors, units, rooms, zones, readers",
		Long: `The facility is one YAML document: the sites, buildings, floors, units,
rooms and zones of the hospital, the walkways, stairs and lifts between the
zones, the RFID reader antennas and Wi-Fi access points in them, and each
unit's par levels (docs/operations.md, "The facility";
examples/facility/hospital.yaml is a full one).

"facility get > hospital.yaml", edit, "facility apply -f hospital.yaml" is
the way to change it.`,
		Args: subcommandArgs,
		RunE: missingSubcommand,
	}
	cmd.AddCommand(
		c.facilityApplyCommand(),
		c.facilityGetCommand(),
	)
	return cmd
}

func (c *cli) facilityApplyCommand() *cobra.Command {
	var (
		file, etag string
		dryRun     bool
	)
	cmd := &cobra.Command{
		Use:   "apply -f FILE [--dry-run] [--etag E]",
		Short: "Replace the facility with a YAML document",
		Long: `Replace the facility with the document in FILE and print what it holds.
Devices located in zones the new document no longer has keep their last
place until new evidence comes.

The server checks the whole document first; when it refuses it (exit code
5), every problem is printed on a line of its own, naming the line of the
file: "hospital.yaml: line 42: sites[0]...zones[1].w: must be positive".
--dry-run has the server check the document and apply nothing.

--etag applies only if the facility is still the one "facility get -o json"
returned with that etag; another change meanwhile fails with exit code 6.

With -o json the output is the Facility.`,
		Example: `  medfleetctl facility apply -f examples/facility/hospital.yaml --dry-run
  medfleetctl facility apply -f hospital.yaml`,
		Args: exactArgs(0, "no arguments; the document is -f FILE"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usageErrorf(cmd, "-f: required, the facility document (YAML)")
			}
			data, err := os.ReadFile(file)
			if err != nil {
				return usageErrorf(cmd, "-f %q: %v", file, unwrapPath(err))
			}
			if len(bytes.TrimSpace(data)) == 0 {
				return usageErrorf(cmd, "-f %q: the file is empty", file)
			}
			req := &medfleetv1.ApplyFacilityRequest{Yaml: string(data), Etag: etag, ValidateOnly: dryRun}
			return c.withLocationClient(cmd.Context(), func(client medfleetv1.LocationServiceClient) error {
				rctx, cancel := c.rpcContext(cmd.Context())
				defer cancel()
				f, err := client.ApplyFacility(rctx, req)
				if err != nil {
					return facilityProblems(err, file)
				}
				if c.flags.output == "json" {
					return writeJSON(c.stdout, f)
				}
				return writeApplied(c.stdout, file, f, dryRun)
			})
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the facility document, YAML")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "have the server check the document; apply nothing")
	cmd.Flags().StringVar(&etag, "etag", "", "apply only if the facility still has this etag")
	return cmd
}

// facilityProblems rewrites the server's refusal of a facility document
// so that each problem reads "FILE: line N: field: reason", one a line as
// the server listed them, under "FILE: N problems". Other errors are
// returned as they are. The code, and so the exit code, stays
// InvalidArgument.
func facilityProblems(err error, file string) error {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.InvalidArgument {
		return err
	}
	var problems []string
	for _, d := range st.Details() {
		br, ok := d.(*errdetails.BadRequest)
		if !ok {
			continue
		}
		for _, v := range br.GetFieldViolations() {
			if v.GetField() == "yaml" {
				problems = append(problems, v.GetDescription())
			}
		}
	}
	if len(problems) == 0 {
		return err
	}
	msg := file + ": " + problems[0] // errorLines does not repeat it below
	if len(problems) > 1 {
		msg = file + ": " + countNoun(len(problems), "problem")
	}
	br := &errdetails.BadRequest{}
	for _, p := range problems {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: file, Description: p})
	}
	rewritten, derr := status.New(codes.InvalidArgument, msg).WithDetails(br)
	if derr != nil {
		return err
	}
	return rewritten.Err()
}

// writeApplied says what an applied, or checked, document holds.
func writeApplied(w io.Writer, file string, f *medfleetv1.Facility, dryRun bool) error {
	counts := fmt.Sprintf("%s, %s, %s", countNoun(int(f.GetZones()), "zone"), countNoun(int(f.GetReaders()), "reader"),
		countNoun(int(f.GetAccessPoints()), "access point"))
	if dryRun {
		_, err := fmt.Fprintf(w, "%s is valid: %s (dry run: nothing applied)\n", file, counts)
		return err
	}
	_, err := fmt.Fprintf(w, "applied %s: %s\netag: %s\n", file, counts, cell(f.GetEtag()))
	return err
}

// Output formats of "facility get".
const (
	facilityYAML = "yaml"
	facilityJSON = "json"
)

func (c *cli) facilityGetCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "get [-o yaml|json]",
		Short: "Print the facility document as applied",
		Long: `Print the facility document exactly as it was applied, comments and all,
so that "facility get > hospital.yaml" gives back the file to edit and
apply again. With -o json the output is the Facility: the document with its
counts, update time and etag (for "facility apply --etag").

This command has an output format of its own: -o yaml (the default, also
spelt -o table) or -o json.`,
		Example: `  medfleetctl facility get > hospital.yaml
  medfleetctl facility get -o json | jq -r .etag`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch output {
			case facilityYAML, "table", facilityJSON:
			default:
				return usageErrorf(cmd, "--output: want yaml or json, got %q", output)
			}
			return c.withLocationClient(cmd.Context(), func(client medfleetv1.LocationServiceClient) error {
				rctx, cancel := c.rpcContext(cmd.Context())
				defer cancel()
				f, err := client.GetFacility(rctx, &medfleetv1.GetFacilityRequest{})
				if err != nil {
					return err
				}
				if output == facilityJSON {
					return writeJSON(c.stdout, f)
				}
				return writeFacilityYAML(c.stdout, f)
			})
		},
	}
	// A local --output shadows the global one (cobra merges a parent's
	// persistent flag only when the command has none of that name), so
	// that this command, and only this one, takes yaml. The global check
	// then sees its default, "table".
	cmd.Flags().StringVarP(&output, "output", "o", facilityYAML, "output format: yaml (the document as applied) or json")
	return cmd
}

// writeFacilityYAML writes the document as applied, with a final newline
// if it has none.
func writeFacilityYAML(w io.Writer, f *medfleetv1.Facility) error {
	doc := f.GetYaml()
	if doc == "" {
		return errors.New("facility get: the server returned no document")
	}
	if doc[len(doc)-1] != '\n' {
		doc += "\n"
	}
	_, err := io.WriteString(w, doc)
	return err
}
