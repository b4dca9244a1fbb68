package account

import "testing"

// TestKeysFor checks the keys of a sign-in attempt: the strict key names the
// address and the account, so that one address's failures do not count
// against another's; a call without an address keeps a strict key.
func TestKeysFor(t *testing.T) {
	t.Parallel()
	p := DefaultThrottlePolicy()
	tests := []struct {
		email, address string
		want           []throttleKey
	}{
		{"Ada@Example.com", "192.0.2.1", []throttleKey{
			{key: "account:ada@example.com", limit: 100, slow: true},
			{key: "address:192.0.2.1", limit: 20, refusal: addressRefusal},
			{key: "address:192.0.2.1 account:ada@example.com", limit: 5, refusal: pairRefusal, reset: true},
		}},
		{"ada@example.com", "", []throttleKey{
			{key: "account:ada@example.com", limit: 100, slow: true},
			{key: "address: account:ada@example.com", limit: 5, refusal: pairRefusal, reset: true},
		}},
	}
	for _, tt := range tests {
		got := p.keysFor(tt.email, tt.address)
		if len(got) != len(tt.want) {
			t.Fatalf("keysFor(%q, %q) = %+v, want %+v", tt.email, tt.address, got, tt.want)
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("keysFor(%q, %q)[%d] = %+v, want %+v", tt.email, tt.address, i, got[i], tt.want[i])
			}
		}
	}
}
