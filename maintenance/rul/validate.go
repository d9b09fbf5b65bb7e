package rul

import (
	"context"
	"fmt"
	"math/rand/v2"
)

// Validation is the result of CrossValidate.
type Validation struct {
	Units       int     `json:"units"`       // units held out, each once
	Predictions int     `json:"predictions"` // histories predicted
	RMSE        float64 `json:"rmse"`
	// PHM08 is the PHM08 score per 100 predictions, comparable with the
	// score of a 100-unit test set.
	PHM08 float64 `json:"phm08_per_100"`
}

// minHistory is the shortest history CrossValidate predicts from. The
// C-MAPSS test units have at least 31 observations.
const minHistory = 30

// CrossValidate estimates how well Train with cfg predicts units it has
// not seen, without a test set: it splits the run-to-failure units into
// folds, by unit, trains on all folds but one and predicts the held-out
// units, for each fold in turn. Each held-out unit is cut at cuts random
// points, as a test set cuts its units before failure: r observations
// before the failure with r uniform in 1 to min(L-minHistory, 1.2 Cap) for
// a unit of L observations, so that some true remaining lives exceed the
// cap, as in the C-MAPSS test sets. Truth is not capped. Units too short
// to cut are only trained on. cfg.Seed draws the folds and the cuts.
//
// Use it to choose a Config; then evaluate the chosen one, once, on the
// test set.
func CrossValidate(ctx context.Context, units []Unit, cfg Config, folds, cuts int) (Validation, error) {
	if folds < 2 || folds > len(units) {
		return Validation{}, fmt.Errorf("rul: cross-validate: %d folds of %d units", folds, len(units))
	}
	if cuts < 1 {
		return Validation{}, fmt.Errorf("rul: cross-validate: %d cuts per unit, want at least 1", cuts)
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0xc5))
	perm := rng.Perm(len(units))
	var v Validation
	var pred, truth []float64
	for fold := range folds {
		var train, held []Unit
		for i, p := range perm {
			if i%folds == fold {
				held = append(held, units[p])
			} else {
				train = append(train, units[p])
			}
		}
		m, err := Train(ctx, train, cfg)
		if err != nil {
			return Validation{}, fmt.Errorf("fold %d: %w", fold+1, err)
		}
		for _, u := range held {
			obs := u.Observations
			most := min(len(obs)-minHistory, int(1.2*cfg.Cap))
			if most < 1 {
				continue
			}
			v.Units++
			for range cuts {
				r := 1 + rng.IntN(most)
				h := Unit{ID: u.ID, Channels: u.Channels, Observations: obs[:len(obs)-r]}
				p, err := m.Predict(h)
				if err != nil {
					return Validation{}, err
				}
				pred = append(pred, p)
				truth = append(truth, obs[len(obs)-1].Time-h.Observations[len(h.Observations)-1].Time)
			}
		}
	}
	if len(pred) == 0 {
		return Validation{}, fmt.Errorf("rul: cross-validate: no unit longer than %d observations", minHistory)
	}
	rmse, phm, err := Evaluate(pred, truth)
	if err != nil {
		return Validation{}, err
	}
	v.Predictions, v.RMSE, v.PHM08 = len(pred), rmse, phm*100/float64(len(pred))
	return v, nil
}
