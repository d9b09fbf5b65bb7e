package facility_test

import (
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/medfleet/medfleet/inventory/facility"
)

// A nurse in room 403 needs a pump: walk outwards from the bed and stop at
// the first clean utility room, where clean pumps are kept.
func ExampleFacility_Walk() {
	data, err := os.ReadFile("../../examples/facility/hospital.yaml")
	if err != nil {
		log.Fatal(err)
	}
	f, err := facility.Parse(data)
	if err != nil {
		log.Fatal(err)
	}
	f.Walk("4w-403-bed", func(id string, metres float64) bool {
		z, _ := f.Zone(id)
		if !strings.Contains(z.Place.RoomName, "Clean Utility") {
			return true
		}
		fmt.Printf("%s (%s), %.0f m\n", z.Place.RoomName, z.Place.UnitName, metres)
		return false
	})
	// Output: 4 West Clean Utility (4 West Medical-Surgical), 24 m
}

func ExampleParse() {
	_, err := facility.Parse([]byte(`sites:
  - id: north
    name: North Campus
    buildings:
      - id: main
        name: Main Building
        floors:
          - id: main-4
            name: Floor 4
            level: 4
            units:
              - id: 4-west
                name: 4 West
                rooms:
                  - id: 4w-401
                    name: Room 401
                    zones:
                      - {id: 4w-401-bed, name: Bed, x: 2, y: 2, w: 0, h: 3}
readers:
  - device: sim-rfid-0003
    antennas: {"1": 4w-corridor-a}
`))
	fmt.Println(err)
	// Output:
	// line 18: sites[0].buildings[0].floors[0].units[0].rooms[0].zones[0].w: must be positive
	// line 21: readers[0].antennas.1: unknown zone "4w-corridor-a"
}
