// Package reliability fits life distributions to a fleet's failure records
// and turns them into maintenance decisions.
//
// The data are, per device model and failure mode, one [Observation] per
// unit: the age at which the unit failed, or, right-censored, the age it has
// reached without failing (still in service, or retired for another reason).
// Counting the survivors matters: fitting failures alone makes every part
// look short-lived.
//
// [FitWeibull] is the two-parameter Weibull maximum-likelihood fit with
// right censoring, with Fisher-matrix standard errors and confidence bounds.
// A [Fit] answers the usual questions: reliability, hazard, B-lives, mean
// life, conditional reliability of a unit that has already reached an age,
// and the age by which reliability falls to a target. [KaplanMeier] is the
// distribution-free estimate to check a fit against.
//
// The decisions: [AssessInterval] says whether a preventive-maintenance
// interval is too short, about right or too long for a reliability target,
// or whether time-based replacement cannot help at all (no wear-out);
// [OptimalAgeReplacement] is the Barlow–Proschan age-replacement interval
// that minimises the long-run cost rate; [RankRisk] orders models and
// failure modes by the probability of failure within a horizon.
//
// Time is in whatever unit the caller records (operating hours, days,
// cycles); results come back in the same unit.
//
// reliability uses only the standard library and imports nothing from
// Medfleet: the server and medfleetctl both link it.
package reliability
