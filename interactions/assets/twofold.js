// Progressive enhancements for the interaction pages; every page works without them.
document.addEventListener('click', (event) => {
  const target = event.target;
  if (target instanceof HTMLElement && target.matches('[data-print]')) window.print();
});
