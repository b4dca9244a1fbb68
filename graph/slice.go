package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
)

// marshalSliceInOrder marshals a list's elements one after another on the
// calling goroutine. The list functions in lists_.generated.go call it where
// gqlgen's own template calls graphql.MarshalSliceConcurrently (see
// cmd/gqlgen-obsqra): gqlgen starts a goroutine per element of every list
// of objects, and for our lists, whose elements are marshalled from memory
// (the batch loaders have already fetched everything a list needs in one
// statement), the goroutines cost more than they save: stack growth,
// scheduling and a semaphore per element were a fifth of the CPU time of the
// protocols query. A panic in one element becomes that element's error and
// null, as gqlgen does it.
func marshalSliceInOrder(ctx context.Context, length int, omitPanicHandler bool,
	marshalElement func(ctx context.Context, i int) graphql.Marshaler) graphql.Array {
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
