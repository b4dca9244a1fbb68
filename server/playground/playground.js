// Starts GraphiQL against this server's /graphql endpoint. React, ReactDOM
// and GraphiQL are the vendored UMD builds that the Obsqra server serves
// itself: the playground fetches nothing from anywhere else.
(function () {
  'use strict';

  var container = document.getElementById('graphiql');
  var endpoint = new URL(container.dataset.endpoint, window.location.href).toString();

  // The fetcher POSTs JSON to /graphql and adds the headers typed in the
  // Headers tab, e.g. {"Authorization": "Bearer <accessToken>"}.
  var fetcher = GraphiQL.createFetcher({
    url: endpoint,
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
