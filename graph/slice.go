package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
)

// marshalSliceInOrder marshals a list's elements one after another on the
// calling goroutine. `make generate` rewrites gqlgen's calls to
// graphql.MarshalSliceConcurrently into calls to it: gqlgen starts a
// goroutine per element of every list of objects, and for our lists, whose
// elements are marshalled from memory (the batch loaders have already
// fetched everything a list needs in one statement), the goroutines cost
// more than they save: stack growth, scheduling and a semaphore per
// element were a fifth of the CPU time of the protocols query. The
// signature is MarshalSliceConcurrently's, so the rewrite is a rename;
// workerLimit is unused. A panic in one element becomes that element's
// error and null, as gqlgen does it.
func marshalSliceInOrder(ctx context.Context, length int, workerLimit int64, omitPanicHandler bool,
	marshalElement func(ctx context.Context, i int) graphql.Marshaler) graphql.Array {
	_ = workerLimit
	ret := make(graphql.Array, length)
	for i := range length {
		idx := i
		childCtx := graphql.WithFieldContext(ctx, &graphql.FieldContext{Index: &idx})
		if omitPanicHandler {
			ret[i] = marshalElement(childCtx, i)
			continue
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					graphql.AddError(childCtx, graphql.Recover(childCtx, r))
					ret[i] = graphql.Null
				}
			}()
			ret[i] = marshalElement(childCtx, i)
		}()
	}
	return ret
}
