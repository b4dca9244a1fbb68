// Starts GraphiQL against this server's /graphql endpoint. React, ReactDOM
// and GraphiQL are the vendored UMD builds that the Obsqra server serves
// itself: the playground fetches nothing from anywhere else.
(function () {
  'use strict';

  var container = document.getElementById('graphiql');
  var endpoint = new URL(container.dataset.endpoint, window.location.href).toString();

  // The fetcher POSTs queries and mutations to /graphql with the headers
  // typed in the Headers tab, e.g. {"Authorization": "Bearer <accessToken>"},
  // and runs subscriptions over a WebSocket on the same endpoint
  // (graphql-transport-ws, the graphql-ws client bundled in GraphiQL).
  var fetcher = GraphiQL.createFetcher({
    url: endpoint,
    subscriptionUrl: endpoint.replace(/^http/, 'ws'),
    enableIncrementalDelivery: false
  });

  var defaultQuery = [
    '# Welcome to the Obsqra GraphQL playground.',
    '#',
    '# To act as a user, sign in with the login mutation,',
    '# then enter in the Headers tab below:',
    '#   {"Authorization": "Bearer <accessToken>"}',
    '',
    'query Me {',
    '  me {',
    '    id',
    '    email',
    '    preferences {',
    '      riskTolerance',
    '    }',
    '  }',
    '}',
    '',
    'query Market {',
    '  protocols {',
    '    slug',
    '    latestMetrics { apyBps tvlUsd utilizationBps source }',
    '    latestRisk { score decisionId }',
    '  }',
    '}',
    '',
    '# Watch the simulated market tick (a new score per protocol every 10 s):',
    'subscription Risk {',
    '  riskScoreUpdated {',
    '    cursor',
    '    riskScore { score observedAt protocol { slug } }',
    '  }',
    '}',
    ''
  ].join('\n');

  ReactDOM.createRoot(container).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: defaultQuery,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: false,
      defaultEditorToolsVisibility: true
    })
  );
})();
