// Package rul learns the remaining useful life (RUL) of devices from a
// fleet's run-to-failure history and predicts it for devices in service.
//
// A [Unit] is one device's history: observations in time order, each a
// vector of named channels (sensor readings, operating settings). The model
// is generic over channels: [Train] learns from the training units which
// channels carry information (it drops constant ones and those that do not
// follow the remaining life), standardises them, adds a health index (a
// least-squares fit of the remaining life on them), derives features of
// each over trailing windows at every observation (last value, means,
// least-squares slopes, moving averages, extremes, and the drift from the
// unit's own first observations) with the unit's age, and fits an ensemble
// of gradient-boosted regression trees to the remaining life, capped
// piecewise-linearly ([Config.Cap], 125 cycles by default, as the C-MAPSS
// literature does). [CrossValidate] estimates its error by unit-wise folds
// of the training units, to choose a [Config] without a test set.
// [Model.Predict] scores a device from its observations so far, by channel
// name, so that the server scores live devices with the same code that is
// evaluated offline. A trained model is stored with [Model.MarshalBinary].
//
// [ReadCMAPSS] and [ReadRUL] read the NASA C-MAPSS turbofan files, the
// benchmark the model is developed on; [Evaluate] scores predictions by RMSE
// and by the PHM08 score.
//
// rul uses only the standard library and imports nothing from Medfleet: the
// server and medfleetctl both link it.
package rul
