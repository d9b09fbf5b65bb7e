// Package maintenance is the arithmetic of a maintenance program: plans
// (tasks triggered by calendar, usage or condition, with due windows),
// usage projection from what devices report, the due list, and compliance
// figures. It holds no state and does no I/O; maintenance/program keeps the
// state in etcd and runs the scheduler, maintenance/reliability fits
// failure distributions, maintenance/rul predicts remaining useful life.
//
// It imports proto only, so that medfleetctl can check a plan file offline.
package maintenance
