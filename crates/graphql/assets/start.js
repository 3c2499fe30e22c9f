// GraphiQL over /graphql: queries and mutations by POST, subscriptions
// over a WebSocket to the same path. Put "Authorization": "Bearer <token>"
// in the Headers tab (POST /api/v1/auth/token gives one); subscriptions
// send the same headers in their connection_init.
(function () {
  'use strict';
  var http = new URL('/graphql', window.location.href);
  var ws = new URL('/graphql', window.location.href);
  ws.protocol = http.protocol === 'https:' ? 'wss:' : 'ws:';
  var fetcher = GraphiQL.createFetcher({ url: http.href, subscriptionUrl: ws.href });
  var example = [
    '# A page of products with their live stock. To act as an account, sign in',
    '# (POST /api/v1/auth/token) and put {"Authorization": "Bearer <token>"}',
    '# in the Headers tab below.',
    '{',
    '  products(first: 10) {',
    '    items { id sku name price { amount currency } stock { available reserved sold } }',
    '    next',
    '  }',
    '}',
    ''
  ].join('\n');
  var root = ReactDOM.createRoot(document.getElementById('graphiql'));
  root.render(React.createElement(GraphiQL, {
    fetcher: fetcher,
    defaultQuery: example,
    defaultHeaders: '{}',
    shouldPersistHeaders: false
  }));
})();
