// Package facility is the model of a hospital's buildings: where its zones
// are, how one walks between them, which RFID reader antennas and Wi-Fi
// access points cover them, and how many devices of each profile each unit
// should hold (par levels).
//
// A hospital is site > building > floor > unit > room > zone. A zone is a
// rectangle on its floor, in metres, and the smallest place a device is
// located in. Zones are connected by walkways, floors by stairs and lifts,
// each with a walking cost in metres; Walk and Distance find the cheapest
// way over that graph, which is what "nearest" means to someone pushing a
// pump down a corridor.
//
// # The document
//
// The model is one YAML document (medfleetctl facility apply -f
// hospital.yaml; examples/facility/hospital.yaml is a full one):
//
//	sites:
//	  - id: north
//	    name: North Campus
//	    time_zone: Europe/Paris     # optional IANA zone
//	    buildings:
//	      - id: main
//	        name: Main Building
//	        floors:
//	          - id: main-4
//	            name: Floor 4
//	            level: 4            # integer, for ordering
//	            width: 60           # metres, optional; default: the zones' bounding box
//	            height: 30
//	            units:
//	              - id: 4-west
//	                name: 4 West Medical-Surgical
//	                par:            # optional: profile -> the fewest available devices
//	                  infusion-pump: 6
//	                rooms:
//	                  - id: 4w-401
//	                    name: Room 401
//	                    zones:      # top-left x, y and size w, h, metres
//	                      - {id: 4w-401-bed, name: Bed, x: 2, y: 2, w: 4, h: 3}
//	connections:                    # undirected
//	  - {from: 4w-401-bed, to: 4w-corridor-a}         # cost: the centres' distance
//	  - {from: 4w-corridor-a, to: 4w-corridor-b, cost: 12}
//	  - {from: stairs-4, to: stairs-3, kind: stairs, cost: 25}
//	readers:
//	  - device: sim-rfid-0003       # the reader's device id
//	    antennas: {"1": 4w-corridor-a, "2": 4w-401-bed}
//	access_points:
//	  - {bssid: "0a:1b:2c:3d:4e:5f", zone: 4w-corridor-a}
//
// The rules, each broken one reported as a *LineError naming its line:
//
//   - Every site, building, floor, unit, room and zone has an id and a name.
//     An id is 1-64 of [a-z0-9._-], starting with a letter or digit, and
//     unique among the ids of its kind in the whole document: a zone id
//     among zones, a room id among rooms. A name is 1-128 characters.
//   - A floor has a level. Its width and height, when given, are positive
//     and every zone lies within them.
//   - A unit has at least one room, a room at least one zone and at most
//     MaxZonesPerRoom; the document has at least one site and one zone.
//   - A zone's x and y are at least 0, its w and h more than 0. Every
//     length and cost is at most MaxMetres.
//   - par maps a device profile (a lower-case letter, then up to 31 of
//     [a-z0-9-]) to an integer at least 0.
//   - A connection joins two different existing zones. kind is walk (the
//     default), stairs or lift. cost is at least 0; without one it is the
//     distance between the zones' centres. A connection between floors
//     needs a cost and the kind stairs or lift.
//   - A reader's device is a device id (1-64 of [A-Za-z0-9._-], starting
//     with a letter or digit), listed once; it has at least one antenna,
//     named by 1-16 characters, each in an existing zone.
//   - An access point's bssid is a MAC address (six hex pairs with colons,
//     read in any case and kept in lower case), listed once, in an
//     existing zone.
//   - Unknown keys, keys given twice, YAML aliases, a second document in
//     the stream and documents larger than MaxDocumentSize (4 MiB) are
//     refused.
//
// The zones of one room are connected to each other at the distance
// between their centres. A zone without a connection is allowed; no walk
// reaches it.
//
// # Imports
//
// facility imports the standard library and gopkg.in/yaml.v3 only. It must
// not import proto, gRPC, etcd or the server: medfleetctl checks a
// document offline with it, and the location engine (inventory/location)
// and the server build on it.
package facility
