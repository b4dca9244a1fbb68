package ml

import "math"

// This file holds the QP solver's dense linear algebra on row-major n×n
// slices: the positive-semidefinite test of the covariance and the pivoted
// Cholesky factorisation of the reduced Hessian. They work in the solver's
// preallocated workspace, which is why they are not gonum calls.

// qpPSD reports whether the n×n symmetric matrix a is positive semidefinite
// up to tol, by a Cholesky factorisation with diagonal pivoting in work: it
// stops when every remaining diagonal is at most tol, and then the
// remainder must be negligible too.
func qpPSD(a, work []float64, n int, tol float64) bool {
	copy(work, a)
	m := work
	for k := 0; k < n; k++ {
		p := k
		for i := k + 1; i < n; i++ {
			if m[i*n+i] > m[p*n+p] {
				p = i
			}
		}
		if m[p*n+p] <= tol {
			for i := k; i < n; i++ {
				for j := k; j < n; j++ {
					if (i == j && m[i*n+i] < -tol) || (i != j && math.Abs(m[i*n+j]) > tol) {
						return false
					}
				}
			}
			return true
		}
		qpSwap(m, n, k, p)
		piv := m[k*n+k]
		for i := k + 1; i < n; i++ {
			f := m[i*n+k] / piv
			for j := k + 1; j < n; j++ {
				m[i*n+j] -= f * m[k*n+j]
			}
		}
	}
	return true
}

// qpSwap swaps rows and columns i and j of the n×n matrix m.
func qpSwap(m []float64, n, i, j int) {
	if i == j {
		return
	}
	for k := 0; k < n; k++ {
		m[i*n+k], m[j*n+k] = m[j*n+k], m[i*n+k]
	}
	for k := 0; k < n; k++ {
		m[k*n+i], m[k*n+j] = m[k*n+j], m[k*n+i]
	}
}

// qpCholPiv factorises the k×k symmetric matrix a in place as PᵀAP = LLᵀ
// (L in the lower triangle) with diagonal pivoting (largest remaining
// diagonal first, ties to the lower position), stopping when every
// remaining diagonal is at most tol. It permutes perm along and returns the
// rank.
func qpCholPiv(a []float64, perm []int, k int, tol float64) int {
	for j := 0; j < k; j++ {
		p := j
		for i := j + 1; i < k; i++ {
			if a[i*k+i] > a[p*k+p] {
				p = i
			}
		}
		if a[p*k+p] <= tol {
			return j
		}
		qpSwap(a, k, j, p)
		perm[j], perm[p] = perm[p], perm[j]
		l := math.Sqrt(a[j*k+j])
		a[j*k+j] = l
		for i := j + 1; i < k; i++ {
			a[i*k+j] /= l
		}
		for i := j + 1; i < k; i++ {
			f := a[i*k+j]
			for z := j + 1; z <= i; z++ {
				a[i*k+z] -= f * a[z*k+j]
			}
			for z := j + 1; z < i; z++ {
				a[z*k+i] = a[i*k+z]
			}
		}
	}
	return k
}
