package starknettest_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/starknet"
	"github.com/obsqra/obsqra/starknet/starknettest"
)

// post sends one raw JSON-RPC request to the node and decodes the answer.
func post(t *testing.T, node *starknettest.Node, body string) (result json.RawMessage, code int) {
	t.Helper()
	resp, err := http.Post(node.URL, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	defer resp.Body.Close()
	var r struct {
		Result json.RawMessage
		Error  *struct{ Code int }
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if r.Error != nil {
		return nil, r.Error.Code
	}
	return r.Result, 0
}

// The node holds the client to the spec: felts without leading zeros.
func TestNodeWantsSpecFelts(t *testing.T) {
	t.Parallel()
	node := starknettest.NewNode(t)
	hash, _ := obsqra.ParseFelt("0xabc")
	node.SetTransaction(hash, starknettest.Transaction{FinalityStatus: starknet.StatusAcceptedOnL2, ExecutionStatus: starknet.ExecutionSucceeded})
	for _, tc := range []struct {
		params string
		code   int
	}{
		{`{"transaction_hash":"0xabc"}`, 0},
		{`["0xABC"]`, 0}, // positional params
		{`{"transaction_hash":"0x0abc"}`, -32602},
		{`{"transaction_hash":"abc"}`, -32602},
		{`{}`, -32602},
		{`{"transaction_hash":"0xabd"}`, 29},
	} {
		_, code := post(t, node, `{"jsonrpc":"2.0","id":1,"method":"starknet_getTransactionStatus","params":`+tc.params+`}`)
		if code != tc.code {
			t.Errorf("getTransactionStatus(%s): code %d, want %d", tc.params, code, tc.code)
		}
	}
	if _, code := post(t, node, `{"jsonrpc":"2.0","id":1,"method":"starknet_nope","params":[]}`); code != -32601 {
		t.Errorf("unknown method: code %d, want -32601", code)
	}
	if node.Calls("starknet_getTransactionStatus") != 6 {
		t.Errorf("Calls = %d, want 6", node.Calls("starknet_getTransactionStatus"))
	}
}

func TestNodeChainID(t *testing.T) {
	t.Parallel()
	for chain, want := range map[string]string{starknet.ChainSepolia: `"0x534e5f5345504f4c4941"`, starknet.ChainMainnet: `"0x534e5f4d41494e"`} {
		node := starknettest.NewNode(t, starknettest.WithChainID(chain))
		if got, _ := post(t, node, `{"jsonrpc":"2.0","id":1,"method":"starknet_chainId"}`); string(got) != want {
			t.Errorf("chainId of %s = %s, want %s", chain, got, want)
		}
	}
}

// A key's signature is one the account checks for real, over that hash
// only.
func TestKeyAndAccount(t *testing.T) {
	t.Parallel()
	node := starknettest.NewNode(t)
	address, key := node.NewAccount(t)
	if _, err := obsqra.ParseAddress(address.String()); err != nil {
		t.Fatalf("NewAccount address %s: %v", address, err)
	}
	call := func(hash obsqra.Felt, sig []obsqra.Felt) (json.RawMessage, int) {
		calldata := []string{`"` + hex(hash) + `"`, `"0x2"`, `"` + hex(sig[0]) + `"`, `"` + hex(sig[1]) + `"`}
		return post(t, node, `{"jsonrpc":"2.0","id":1,"method":"starknet_call","params":{"request":{"contract_address":"`+hex(address)+
			`","entry_point_selector":"`+hex(starknet.Selector("is_valid_signature"))+`","calldata":[`+strings.Join(calldata, ",")+`]},"block_id":"latest"}}`)
	}
	hash, _ := obsqra.ParseFelt("0x1234")
	other, _ := obsqra.ParseFelt("0x1235")
	if got, code := call(hash, key.Sign(hash)); code != 0 || string(got) != `["0x56414c4944"]` {
		t.Errorf("is_valid_signature(signed hash) = %s, %d, want ['VALID']", got, code)
	}
	if got, code := call(other, key.Sign(hash)); code != 0 || string(got) != `["0x0"]` {
		t.Errorf("is_valid_signature(another hash) = %s, %d, want [0]", got, code)
	}
	if got, code := call(hash, starknettest.NewKey(t).Sign(hash)); code != 0 || string(got) != `["0x0"]` {
		t.Errorf("is_valid_signature(another key) = %s, %d, want [0]", got, code)
	}
}

func hex(f obsqra.Felt) string {
	s := strings.TrimLeft(f.String()[2:], "0")
	if s == "" {
		s = "0"
	}
	return "0x" + s
}
