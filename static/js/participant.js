// After htmx swaps in the next item, move keyboard and screen-reader focus to its heading,
// so the new item is announced and Tab starts from its top. A script file rather than an
// hx-on attribute: the Content-Security-Policy allows no inline or evaluated script.
document.addEventListener("htmx:afterSettle", function () {
  var heading = document.getElementById("step-heading");
  if (heading) {
    heading.focus();
  }
});
